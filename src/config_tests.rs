use super::*;
use figment::Jail;

/// The load's error with one `BRIDGE_*` variable set (and no file).
fn load_error(key: &str, value: &str) -> String {
    let mut error = String::new();
    Jail::expect_with(|jail| {
        jail.set_env(key, value);
        error = Config::load(None).unwrap_err().to_string();
        Ok(())
    });
    error
}

#[test]
fn defaults_are_valid() {
    let config = Config::from_figment(Figment::from(Toml::string(DEFAULTS_TOML))).unwrap();
    assert_eq!(config.amqp.agent_exchange, "transfer.agent");
    assert_eq!(config.http.max_body_bytes, 65536);
    assert_eq!(config.routes.len(), 2);
}

#[test]
fn env_overrides_file_and_names_bad_keys() {
    Jail::expect_with(|jail| {
        jail.create_file("custom.toml", "[polling]\nongoing_interval = \"9s\"\n")?;
        jail.set_env("BRIDGE_UPSTREAM__API_SECRET", "s3cr3t-value");
        jail.set_env("BRIDGE_HTTP__API_TOKENS", "tok-a, tok-b");
        let config = Config::load(Some(Path::new("custom.toml"))).unwrap();
        assert_eq!(config.polling.ongoing_interval, Duration::from_secs(9));
        assert_eq!(config.http.api_tokens.len(), 2);
        let printed = config.redacted_toml();
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(!printed.contains("tok-a"));
        assert!(!printed.contains("guest:guest"), "{printed}");
        assert!(!format!("{config:?}").contains("s3cr3t-value"));

        jail.set_env("BRIDGE_HTTP__MAX_BODY_BYTES", "lots");
        let err = Config::load(None).unwrap_err().to_string();
        assert!(
            err.starts_with("http.max_body_bytes: invalid type"),
            "{err}"
        );
        Ok(())
    });
}

/// All-digit text from the environment stays text, leading zeros and all;
/// a numeric key still reads its variable as a number.
#[test]
fn digits_from_env_stay_text_for_text_keys() {
    Jail::expect_with(|jail| {
        jail.set_env("BRIDGE_UPSTREAM__API_ID", "007");
        jail.set_env("BRIDGE_UPSTREAM__API_SECRET", "123456");
        jail.set_env("BRIDGE_HTTP__API_TOKENS", "424242");
        jail.set_env("BRIDGE_AMQP__AGENT_EXCHANGE", "true");
        jail.set_env("BRIDGE_UPSTREAM__DAILY_BUDGET", "1234");
        let config = Config::load(None).unwrap();
        assert_eq!(config.upstream.api_id, "007");
        assert_eq!(config.upstream.api_secret.expose_secret(), "123456");
        let tokens: Vec<_> = config
            .http
            .api_tokens
            .iter()
            .map(|t| t.expose_secret())
            .collect();
        assert_eq!(tokens, ["424242"]);
        assert_eq!(config.amqp.agent_exchange, "true");
        assert_eq!(config.upstream.daily_budget, 1234);
        Ok(())
    });
}

/// `BRIDGE_` variables of no section are someone else's and are left out;
/// an unknown key in a known section still stops the load.
#[test]
fn variables_of_no_section_are_left_out() {
    Jail::expect_with(|jail| {
        jail.set_env("BRIDGE_BIN", "/usr/local/bin/transfer-bridge");
        jail.set_env("BRIDGE_URL", "http://bridge:8080");
        jail.set_env("BRIDGE_PBX__HOST", "pbx.example.com");
        jail.set_env("BRIDGE_UPSTREAM__API_ID", "id-1");
        let config = Config::load(None).unwrap();
        assert_eq!(config.upstream.api_id, "id-1");
        Ok(())
    });
    for (typo, key) in [
        ("BRIDGE_AMQP_URL", "amqp_url"),
        ("BRIDGE_HTTP__BIDN", "bidn"),
    ] {
        let err = load_error(typo, "x");
        assert!(err.contains(key), "{typo}: {err}");
    }
}

#[test]
fn allowed_hosts_come_as_a_list_or_comma_separated() {
    Jail::expect_with(|jail| {
        jail.set_env("BRIDGE_WEBHOOK__ALLOWED_HOSTS", "127.0.0.1, ivr.internal");
        let config = Config::load(None).unwrap();
        assert_eq!(config.webhook.allowed_hosts, ["127.0.0.1", "ivr.internal"]);
        jail.set_env("BRIDGE_WEBHOOK__ALLOWED_HOSTS", "https://ivr.internal/hook");
        let err = Config::load(None).unwrap_err().to_string();
        assert!(err.starts_with("webhook.allowed_hosts: "), "{err}");
        Ok(())
    });
}

/// Values past what the timers and the limiter hold fail the load, naming
/// the key, instead of panicking later.
#[test]
fn absurd_durations_and_rates_are_refused() {
    for (key, value, name) in [
        (
            "BRIDGE_POLLING__SAFETY_INTERVAL",
            "1000d",
            "polling.safety_interval",
        ),
        (
            "BRIDGE_HTTP__HEADER_READ_TIMEOUT",
            "100000000d",
            "http.header_read_timeout",
        ),
        (
            "BRIDGE_UPSTREAM__RATE_LIMIT_PER_S",
            "2000000000",
            "upstream.rate_limit_per_s",
        ),
    ] {
        let err = load_error(key, value);
        assert!(err.starts_with(name), "{key}={value}: {err}");
    }
}

#[test]
fn validation_names_the_key() {
    let err = load_error("BRIDGE_UPSTREAM__RATE_LIMIT_PER_S", "0");
    assert_eq!(err, "upstream.rate_limit_per_s: must be greater than 0");
}

#[test]
fn amqp_url_is_parsed_like_the_client_parses_it() {
    for (bad, why) in [
        ("amqp://u:p@[::bad/%2f", "invalid IPv6 address"),
        (
            "http://guest:guest@127.0.0.1:5672/%2f",
            "Invalid AMQP scheme",
        ),
        ("amqp://h:5672/%2f?heartbeat=soon", "invalid digit"),
        ("amqps", "relative URL"),
    ] {
        let err = load_error("BRIDGE_AMQP__URL", bad);
        assert!(err.starts_with("amqp.url: "), "{bad}: {err}");
        assert!(err.contains(why), "{bad}: {err}");
        assert!(!err.contains("u:p"), "the reason repeats the URL: {err}");
    }
}

#[test]
fn http_timeouts_and_connection_cap_are_checked() {
    for (key, value, message) in [
        (
            "HEADER_READ_TIMEOUT",
            "0s",
            "http.header_read_timeout: must be longer than 0s",
        ),
        (
            "BODY_READ_TIMEOUT",
            "0s",
            "http.body_read_timeout: must be longer than 0s",
        ),
        (
            "IDLE_TIMEOUT",
            "0s",
            "http.idle_timeout: must be longer than 0s",
        ),
        (
            "MAX_CONNECTIONS",
            "0",
            "http.max_connections: must be between 1 and 1000000",
        ),
    ] {
        let err = load_error(&format!("BRIDGE_HTTP__{key}"), value);
        assert_eq!(err, message);
    }
}
