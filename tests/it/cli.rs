//! The binary's CLI contract: `config check` and `sip render`.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_transfer-bridge");

fn bridge(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

#[test]
fn config_check_redacts_and_names_bad_keys() {
    let ok = bridge(
        &["config", "check"],
        &[
            ("BRIDGE_UPSTREAM__API_SECRET", "top-secret-value"),
            ("BRIDGE_AMQP__URL", "amqp://u:hunter2@h:5672/%2f"),
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("[upstream]"), "{out}");
    assert!(
        !out.contains("top-secret-value") && !out.contains("hunter2"),
        "{out}"
    );
    let bad = bridge(
        &["config", "check"],
        &[("BRIDGE_POLLING__ONGOING_INTERVAL", "soon")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("polling.ongoing_interval"));
    let route = bridge(&["config", "check"], &[("BRIDGE_SIP__MAX_URI_LEN", "0")]);
    assert_eq!(
        route.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&route.stderr)
    );
}

#[test]
fn config_check_refuses_an_amqp_url_the_client_cannot_parse() {
    let bad = bridge(
        &["config", "check"],
        &[("BRIDGE_AMQP__URL", "amqp://u:hunter2@[::bad/%2f")],
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("amqp.url"), "{stderr}");
    assert!(stderr.contains("invalid IPv6 address"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn sip_render_prints_the_instruction() {
    let body = r#"{"id":"ct-1","externalConversationId":"conv-1","status":"COMPLETED","createdAt":"2024-06-01T12:34:56Z","type":"SIP",
        "sip":{"returnTransferType":"INVITE","returnURI":"sip:back@[2001:db8::1]:5060"},
        "outputContext":{"transferType":"SYSTEM","transferVariables":{"lang":"fr"}}}"#;
    let mut child = Command::new(BIN)
        .args(["sip", "render", "-", "--raw"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("INVITE sip:back@[2001:db8::1]:5060 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nX-GA-tv-lang: fr\r\n"), "{text}");
    let agent = r#"{"id":"ct-2","externalConversationId":"c","status":"COMPLETED","createdAt":"x","type":"SIP","outputContext":{"transferType":"AGENT"}}"#;
    let mut child = Command::new(BIN)
        .args(["sip", "render", "-"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(agent.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("makes no SIP instruction"));
}
