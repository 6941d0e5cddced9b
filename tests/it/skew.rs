//! Instances whose clocks disagree, on one PostgreSQL: two `serve`
//! processes under libfaketime (Debian `faketime`), one 30 s ahead and one
//! 30 s behind, and one in this process on the true clock. Leases, claims
//! and due times follow the database's clock, so none of them takes the
//! others for dead.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Connection;
use transfer_bridge::config::Config;

use crate::cluster::{agent_outcome, instance, on_postgres, register};
use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_transfer-bridge");

/// A `serve` process on a clock `skew` off the machine's, killed when
/// dropped.
struct Skewed {
    base: String,
    child: Child,
}

impl Drop for Skewed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `config`'s store, upstream and broker names for instance `name`, in a
/// `serve` process whose wall clock is `skew` (faketime's `-f` offset, e.g.
/// `+30s`) off this machine's. Its monotonic clock is left alone.
async fn serve_skewed(config: &Config, name: &str, skew: &str) -> Skewed {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new("faketime");
    let env = [
        ("STORE__URL", config.store.url.expose_secret().to_owned()),
        ("UPSTREAM__BASE_URL", config.upstream.base_url.clone()),
        ("UPSTREAM__API_ID", config.upstream.api_id.clone()),
        ("UPSTREAM__API_SECRET", SIM_SECRET.into()),
        ("UPSTREAM__DAILY_BUDGET", "10000000".into()),
        ("AMQP__URL", config.amqp.url.expose_secret().to_owned()),
        ("AMQP__AGENT_EXCHANGE", config.amqp.agent_exchange.clone()),
        ("AMQP__PBX_EXCHANGE", config.amqp.pbx_exchange.clone()),
        ("AMQP__AUDIT_EXCHANGE", config.amqp.audit_exchange.clone()),
        ("AMQP__AUDIT_QUEUE", config.amqp.audit_queue.clone()),
        ("HTTP__BIND", format!("127.0.0.1:{port}")),
        ("CLUSTER__INSTANCE_ID", name.into()),
    ];
    command
        .args(["-f", skew, BIN, "serve"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(format!("BRIDGE_{key}"), value);
    }
    let child = command
        .spawn()
        .expect("faketime runs (Debian package `faketime`)");
    let skewed = Skewed {
        base: format!("http://127.0.0.1:{port}"),
        child,
    };
    for _ in 0..200 {
        let ready = reqwest::get(format!("{}/readyz", skewed.base)).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return skewed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the instance {skew} off was not ready within 20 s");
}

#[tokio::test]
async fn instances_whose_clocks_are_half_a_minute_apart_keep_their_own_transfers() {
    let app = on_postgres(|_| {}).await;
    let url = app.config.store.url.expose_secret().to_owned();
    let ahead = serve_skewed(&app.config, "ahead", "+30s").await;
    let behind = serve_skewed(&app.config, "behind", "-30s").await;
    let on_time = instance(&app, "on-time");
    let http = reqwest::Client::new();
    let mut owners = Vec::new();
    for (base, owner) in [
        (&ahead.base, "ahead"),
        (&behind.base, "behind"),
        (&on_time.base, "on-time"),
    ] {
        let id = unique(owner);
        app.script(&id, agent_outcome(120_000));
        register(&http, base, &id).await;
        owners.push((id, owner));
    }
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    // Three renewals and adoption rounds of every instance (3 s apart).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (id, owner) in &owners {
            let now: Option<String> =
                sqlx::query_scalar("SELECT owner FROM transfers WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut db)
                    .await
                    .unwrap();
            assert_eq!(now.as_deref(), Some(*owner), "{id} changed hands");
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM instances \
             WHERE expires_at > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(live, 3, "every lease is live on the database's clock");
    }
    drop((ahead, behind));
    on_time.crash();
}
