use super::*;
use crate::config::Config;

fn amqp(kind: AuditQueueType) -> AmqpConfig {
    let mut cfg = Config::from_figment(Config::embedded()).unwrap().amqp;
    cfg.audit_queue_type = kind;
    cfg
}

fn arg(args: &FieldTable, key: &str) -> Option<String> {
    args.inner().get(key).map(|v| match v {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        other => format!("{other:?}"),
    })
}

#[test]
fn default_audit_log_is_a_stream_with_seven_days_and_five_gb() {
    let args = audit_queue_args(&amqp(AuditQueueType::Stream));
    assert_eq!(arg(&args, "x-queue-type").as_deref(), Some("stream"));
    assert_eq!(arg(&args, "x-max-age").as_deref(), Some("604800s"));
    assert_eq!(
        arg(&args, "x-max-length-bytes").as_deref(),
        Some("5000000000")
    );
    // Streams take no TTL or overflow: the broker refuses them.
    assert_eq!(arg(&args, "x-message-ttl"), None);
    assert_eq!(arg(&args, "x-overflow"), None);
}

#[test]
fn quorum_and_classic_queues_are_bounded_and_drop_their_oldest() {
    for kind in [AuditQueueType::Quorum, AuditQueueType::Classic] {
        let args = audit_queue_args(&amqp(kind));
        assert_eq!(arg(&args, "x-message-ttl").as_deref(), Some("604800000"));
        assert_eq!(arg(&args, "x-overflow").as_deref(), Some("drop-head"));
        assert_eq!(
            arg(&args, "x-max-length-bytes").as_deref(),
            Some("5000000000")
        );
        assert_eq!(arg(&args, "x-max-age"), None);
    }
    let quorum = audit_queue_args(&amqp(AuditQueueType::Quorum));
    assert_eq!(arg(&quorum, "x-queue-type").as_deref(), Some("quorum"));
    // A classic queue is the broker's default: no x-queue-type, so a queue
    // declared before the argument existed still compares equal.
    let classic = audit_queue_args(&amqp(AuditQueueType::Classic));
    assert_eq!(arg(&classic, "x-queue-type"), None);
}

#[test]
fn a_mismatch_says_what_and_how_to_migrate() {
    let mut cfg = amqp(AuditQueueType::Stream);
    cfg.audit_queue = "acme.transfer.audit".into();
    let mismatch = AuditMismatch::new(&cfg, "PRECONDITION_FAILED - inequivalent arg".into());
    assert_eq!(
        mismatch.wanted,
        "x-max-age=604800s, x-max-length-bytes=5000000000, x-queue-type=stream"
    );
    let text = mismatch.to_string();
    assert!(
        text.contains("'acme.transfer.audit' already exists"),
        "{text}"
    );
    assert!(text.contains("PRECONDITION_FAILED"), "{text}");
    assert!(
        text.contains(r"set_policy transfer-audit-bound '^acme\.transfer\.audit$'"),
        "{text}"
    );
    assert!(
        text.contains("rabbitmqctl delete_queue 'acme.transfer.audit'"),
        "{text}"
    );
    assert!(text.contains("  3. "), "{text}");
}

#[test]
fn retention_that_does_not_fit_a_message_ttl_is_refused_for_queues() {
    let mut config = Config::from_figment(Config::embedded()).unwrap();
    config.amqp.audit_max_age = Duration::from_secs(60 * 86_400);
    config.validate().expect("a stream keeps 60 days");
    config.amqp.audit_queue_type = AuditQueueType::Quorum;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("amqp.audit_max_age: at most 49d"), "{err}");
    config.amqp.audit_max_length_bytes = 0;
    config.amqp.audit_queue_type = AuditQueueType::Stream;
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("amqp.audit_max_length_bytes"), "{err}");
}
