//! The local RabbitMQ's CLI, for what AMQP cannot show or do: a queue's
//! type and arguments, and a memory alarm.

use std::process::Command;

use serde_json::Value;

/// Run `rabbitmqctl`; a test that needs it fails, saying why, when it cannot.
pub fn rabbitmqctl(args: &[&str]) -> String {
    try_rabbitmqctl(args).unwrap_or_else(|e| panic!("{e}"))
}

fn try_rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("rabbitmqctl").args(args).output().map_err(|e| {
        format!(
            "rabbitmqctl {args:?} cannot run ({e}): this test needs the CLI of the RabbitMQ at AMQP_URL, on this host, as root"
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `{"name", "type", "arguments"}` of the queue called `name`, if any.
pub fn queue_info(name: &str) -> Option<Value> {
    let out = rabbitmqctl(&[
        "list_queues",
        "name",
        "type",
        "arguments",
        "--formatter",
        "json",
        "--quiet",
    ]);
    let all: Vec<Value> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("rabbitmqctl list_queues JSON ({e}): {out}"));
    all.into_iter().find(|q| q["name"] == name)
}

/// One argument of a queue as `list_queues --formatter json` prints it.
pub fn queue_arg(info: &Value, key: &str) -> Option<Value> {
    match &info["arguments"] {
        Value::Object(map) => map.get(key).cloned(),
        // RabbitMQ 3.x prints `[key, type, value]` triples.
        Value::Array(entries) => entries
            .iter()
            .find(|e| e[0] == key)
            .and_then(|e| e.as_array()?.last().cloned()),
        _ => None,
    }
}

/// The broker's memory alarm, raised for as long as this guard lives. The
/// watermark it found is restored on drop, also when the test panics.
pub struct MemoryAlarm {
    restore: Vec<String>,
}

impl MemoryAlarm {
    pub fn raise() -> Self {
        let before = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
        // The guard exists before the alarm, so nothing below can leave it on.
        let guard = Self {
            restore: restore_args(before.trim()),
        };
        rabbitmqctl(&["set_vm_memory_high_watermark", "absolute", "1"]);
        guard
    }
}

/// `0.4` -> `["0.4"]`; `{absolute,1073741824}` -> `["absolute", "1073741824"]`.
/// An absolute watermark of 1 byte is this guard's own alarm, left by a run
/// that was killed mid-test: the broker's default (0.4) is restored then.
fn restore_args(current: &str) -> Vec<String> {
    const DEFAULT: &str = "0.4";
    if let Some(bytes) = current
        .strip_prefix("{absolute,")
        .and_then(|r| r.strip_suffix('}'))
    {
        return match bytes.parse::<u64>() {
            Ok(n) if n > 1 => vec!["absolute".into(), n.to_string()],
            _ => vec![DEFAULT.into()],
        };
    }
    match current.parse::<f64>() {
        Ok(f) if f > 0.0 => vec![current.to_string()],
        _ => vec![DEFAULT.into()],
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(self.restore.iter().map(String::as_str));
        if let Err(e) = try_rabbitmqctl(&args) {
            // A second panic while unwinding would abort the whole binary.
            if std::thread::panicking() {
                eprintln!("could not restore the memory watermark: {e}");
            } else {
                panic!("could not restore the memory watermark: {e}");
            }
        }
    }
}

#[test]
fn the_watermark_found_is_the_one_restored() {
    assert_eq!(restore_args("0.4"), ["0.4"]);
    assert_eq!(restore_args("0.6"), ["0.6"]);
    assert_eq!(
        restore_args("{absolute,1073741824}"),
        ["absolute", "1073741824"]
    );
    assert_eq!(restore_args("{absolute,1}"), ["0.4"]);
    assert_eq!(restore_args("garbage"), ["0.4"]);
}
