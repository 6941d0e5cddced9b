//! Broker objects a test declared, deleted when the guard drops: at the end
//! of a passing test and during the unwind of a failing one, so the suite
//! leaves the shared broker as it found it (`.ci/run` checks).

use std::time::Duration;

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use transfer_bridge::config::AmqpConfig;

/// Deletes its queues, then its exchanges, on drop.
pub struct BrokerCleanup {
    url: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl BrokerCleanup {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// Everything a bridge with this config declares.
    pub fn topology(amqp: &AmqpConfig) -> Self {
        use secrecy::ExposeSecret;
        let mut cleanup = Self::new(amqp.url.expose_secret());
        cleanup.queue(&amqp.audit_queue);
        for exchange in [
            &amqp.agent_exchange,
            &amqp.pbx_exchange,
            &amqp.audit_exchange,
        ] {
            cleanup.exchange(exchange);
        }
        cleanup
    }

    pub fn queue(&mut self, name: &str) -> &mut Self {
        self.queues.push(name.to_string());
        self
    }

    pub fn exchange(&mut self, name: &str) -> &mut Self {
        self.exchanges.push(name.to_string());
        self
    }
}

impl Drop for BrokerCleanup {
    fn drop(&mut self) {
        if self.queues.is_empty() && self.exchanges.is_empty() {
            return;
        }
        let (url, queues, exchanges) = (
            std::mem::take(&mut self.url),
            std::mem::take(&mut self.queues),
            std::mem::take(&mut self.exchanges),
        );
        // Drop cannot await, and blocking the test's own runtime would stall
        // it: delete from a thread with a runtime of its own.
        let result = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(15), delete(&url, &queues, &exchanges))
                    .await
                    .map_err(|_| "timed out after 15 s".to_string())?
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the cleanup thread panicked".into()));
        if let Err(e) = result {
            // A second panic while unwinding would abort the whole binary.
            if std::thread::panicking() {
                eprintln!("broker cleanup failed: {e}");
            } else {
                panic!("broker cleanup failed: {e}");
            }
        }
    }
}

async fn delete(url: &str, queues: &[String], exchanges: &[String]) -> Result<(), String> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot reach the broker to clean up: {e}"))?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    // Deleting what is already gone is a no-op for RabbitMQ.
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|e| format!("deleting queue {queue}: {e}"))?;
    }
    for exchange in exchanges {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .map_err(|e| format!("deleting exchange {exchange}: {e}"))?;
    }
    let _ = conn.close(200, "cleaned up".into()).await;
    Ok(())
}
