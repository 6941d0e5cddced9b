//! `docker/compose.yml`, `docker/Dockerfile` and `.dockerignore`, checked
//! statically (no Docker engine in CI): the stack is wired the way the
//! bridge's real configuration loader and CLI will read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Jail;
use serde_norway::Value as Yaml;
use transfer_bridge::config::Config;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// compose.yml with its `<<:` merge keys applied, as compose reads it.
fn compose() -> Yaml {
    let mut yaml: Yaml =
        serde_norway::from_str(&read("docker/compose.yml")).expect("compose.yml is YAML");
    yaml.apply_merge().expect("merge keys resolve");
    yaml
}

const BRIDGES: [&str; 2] = ["bridge-a", "bridge-b"];

fn strings(value: &Yaml) -> Vec<&str> {
    let items = value.as_sequence().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .map(|v| v.as_str().expect("a string"))
        .collect()
}

/// `environment:` in either compose form: a map or a list of `KEY=VALUE`.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let env = &service["environment"];
    if let Some(list) = env.as_sequence() {
        let pairs = list.iter().filter_map(|v| v.as_str()?.split_once('='));
        return pairs.map(|(k, v)| (k.into(), v.into())).collect();
    }
    let map = env.as_mapping().expect("environment is a map or a list");
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                other => serde_norway::to_string(other).unwrap().trim().to_string(),
            };
            (k.as_str().unwrap().to_string(), value)
        })
        .collect()
}

/// Loads the config exactly as `transfer-bridge serve` would inside the
/// container: embedded defaults, no file in the working directory, only
/// these `BRIDGE_*` variables. Unknown keys fail (every section denies them).
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
fn config_from_env(vars: &BTreeMap<String, String>) -> Result<Config, String> {
    let mut loaded = None;
    Jail::expect_with(|jail| {
        jail.clear_env();
        for (key, value) in vars.iter().filter(|(k, _)| k.starts_with("BRIDGE_")) {
            jail.set_env(key, value);
        }
        loaded = Some(Config::load(None).map_err(|e| e.to_string()));
        Ok(())
    });
    loaded.unwrap()
}

fn port_of(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn compose_declares_the_services_wired_by_health() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["rabbitmq", "postgres", "simulator", "lb"]
        .iter()
        .chain(&BRIDGES)
    {
        assert!(services[name].is_mapping(), "service {name} is missing");
    }
    let rabbit = &services["rabbitmq"];
    let image = rabbit["image"].as_str().unwrap();
    assert!(image.starts_with("rabbitmq:") && image.contains("management"));
    assert!(strings(&rabbit["ports"]).contains(&"5672:5672"));
    assert!(!strings(&rabbit["healthcheck"]["test"]).is_empty());
    let postgres = &services["postgres"];
    assert!(postgres["image"].as_str().unwrap().starts_with("postgres:"));
    assert!(strings(&postgres["healthcheck"]["test"]).contains(&"pg_isready"));

    for name in ["simulator"].iter().chain(&BRIDGES) {
        let build = &services[name]["build"];
        assert_eq!(build["context"].as_str(), Some(".."), "{name}");
        assert_eq!(build["dockerfile"].as_str(), Some("docker/Dockerfile"));
    }
    // The context is relative to compose.yml; the Dockerfile path to the context.
    assert!(repo("docker/../docker/Dockerfile").is_file());

    let simulator = &services["simulator"];
    let command = strings(&simulator["command"]);
    assert_eq!(command[..3], ["simulator", "--bind", "0.0.0.0:8090"]);
    assert!(strings(&simulator["ports"]).contains(&"8090:8090"));
    // Its own check: the image's HEALTHCHECK probes the bridge's port.
    let check = strings(&simulator["healthcheck"]["test"]).join(" ");
    assert!(check.contains("127.0.0.1:8090/"), "{check}");

    for name in BRIDGES {
        let bridge = &services[name];
        assert_eq!(strings(&bridge["command"]), ["serve"], "{name}");
        for dependency in ["rabbitmq", "postgres", "simulator"] {
            let condition = &bridge["depends_on"][dependency]["condition"];
            assert_eq!(condition.as_str(), Some("service_healthy"), "{dependency}");
        }
    }
    let volumes = compose["volumes"].as_mapping().unwrap();
    for volume in ["rabbitmq-data", "postgres-data"] {
        assert!(volumes.contains_key(volume), "volume {volume} undeclared");
    }
}

#[test]
fn one_address_fronts_both_bridges() {
    let compose = compose();
    let lb = &compose["services"]["lb"];
    assert!(lb["image"].as_str().unwrap().starts_with("nginx:"));
    assert!(strings(&lb["ports"]).contains(&"8080:8080"));
    assert!(strings(&lb["volumes"]).contains(&"./nginx.conf:/etc/nginx/nginx.conf:ro"));
    let nginx = read("docker/nginx.conf");
    for name in BRIDGES {
        assert!(nginx.contains(&format!("server {name}:8080")), "{name}");
    }
    assert!(nginx.contains("listen 8080;"));
    // A dead instance's requests go to the other; held requests stay open
    // longer than http.max_wait.
    assert!(nginx.contains("proxy_next_upstream error timeout http_502 http_503"));
    let held = nginx.split("proxy_read_timeout ").nth(1).unwrap();
    let held: u64 = held.split('s').next().unwrap().parse().unwrap();
    let defaults = config_from_env(&BTreeMap::new()).unwrap();
    assert!(held > defaults.http.max_wait.as_secs(), "{held}");
}

#[test]
fn the_bridge_envs_are_real_configs_on_one_database() {
    let compose = compose();
    let services = &compose["services"];
    let mut ids = Vec::new();
    for name in BRIDGES {
        let env = environment(&services[name]);
        assert!(env.keys().any(|k| k.starts_with("BRIDGE_")));
        let config = config_from_env(&env).unwrap();
        // `serve` exits 2 without credentials.
        assert_eq!(config.missing_credentials(), None);
        assert_eq!(config.upstream.base_url, "http://simulator:8090");
        assert_eq!(config.http.bind.to_string(), "0.0.0.0:8080");
        assert_eq!(
            env["BRIDGE_STORE__URL"],
            "postgres://bridge:bridge@postgres:5432/bridge"
        );
        assert_eq!(
            env["BRIDGE_AMQP__URL"],
            "amqp://guest:guest@rabbitmq:5672/%2f"
        );
        ids.push(config.cluster.instance_id.clone());

        // The bridge presents exactly the credentials the simulator accepts.
        let command = strings(&services["simulator"]["command"]);
        let arg = |flag: &str| {
            let at = command.iter().position(|a| *a == flag).expect(flag);
            command[at + 1]
        };
        assert_eq!(arg("--api-id"), config.upstream.api_id);
        assert_eq!(arg("--api-secret"), env["BRIDGE_UPSTREAM__API_SECRET"]);
        assert_eq!(port_of(arg("--bind")), "8090");
    }
    assert_eq!(ids, BRIDGES, "each instance has its own id");
    // The database the bridges use is the one postgres creates.
    let pg = environment(&services["postgres"]);
    assert_eq!(
        (pg["POSTGRES_USER"].as_str(), pg["POSTGRES_DB"].as_str()),
        ("bridge", "bridge")
    );
}

#[test]
fn a_misspelt_key_is_caught() {
    // Proves the env check above can fail: one underscore instead of two.
    let env = BTreeMap::from([("BRIDGE_AMQP_URL".to_string(), "amqp://x".to_string())]);
    let error = config_from_env(&env).expect_err("BRIDGE_AMQP_URL was accepted");
    assert!(error.contains("amqp_url"), "{error}");
}

/// Dockerfile instructions per stage: continuation lines joined, comments
/// dropped, instruction names upper-cased.
fn stages() -> Vec<Vec<(String, String)>> {
    let text = read("docker/Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, args) = line.split_once(' ').unwrap_or((line, ""));
        let name = name.to_ascii_uppercase();
        if name == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push((name, args.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
    }
    stages
}

fn args<'a>(stage: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let found = stage.iter().filter(|(n, _)| n == name);
    found.map(|(_, a)| a.as_str()).collect()
}

#[test]
fn the_dockerfile_builds_locked_and_runs_unprivileged_with_a_healthcheck() {
    let stages = stages();
    assert!(stages.len() >= 2, "multi-stage");
    let builder = &stages[0];
    assert!(args(builder, "FROM")[0].starts_with("rust:"));
    let build = args(builder, "RUN").join(" ");
    assert!(build.contains("cargo build --release --locked"), "{build}");

    let runtime = stages.last().unwrap();
    assert!(args(runtime, "FROM")[0].starts_with("debian:"));
    let user = args(runtime, "USER");
    let user = user.last().expect("a USER in the runtime stage");
    assert!(!["root", "0"].contains(&user.split(':').next().unwrap()));
    let check = args(runtime, "HEALTHCHECK").join(" ");
    assert!(check.contains("http://127.0.0.1:8080/healthz"), "{check}");
    assert!(
        args(runtime, "RUN").join(" ").contains("curl"),
        "the check's tool"
    );
    let copies = args(runtime, "COPY");
    assert!(
        copies.iter().any(|c| c.starts_with("config/ ")),
        "{copies:?}"
    );
    assert_eq!(args(runtime, "EXPOSE"), ["8080"]);
    assert_eq!(args(runtime, "VOLUME"), [r#"["/data"]"#]);
    assert_eq!(args(runtime, "ENTRYPOINT"), [r#"["transfer-bridge"]"#]);
    assert_eq!(args(runtime, "CMD"), [r#"["serve"]"#]);
    let chown = args(runtime, "RUN").join(" ");
    assert!(chown.contains("chown bridge:bridge /data"), "{chown}");

    // The image's own env is a valid config that listens where EXPOSE says.
    let env: BTreeMap<String, String> = args(runtime, "ENV")
        .iter()
        .flat_map(|line| line.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let config = config_from_env(&env).unwrap();
    assert_eq!(config.http.bind.to_string(), "0.0.0.0:8080");
    assert_eq!(env["BRIDGE_STORE__URL"], "sqlite:///data/bridge.db");
}

#[test]
fn the_build_context_holds_what_the_dockerfile_copies() {
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", "data/", ".git"] {
        assert!(ignored.contains(&must), ".dockerignore lacks {must}");
    }
    for stage in stages() {
        for copy in args(&stage, "COPY").iter().filter(|c| !c.starts_with("--")) {
            let parts: Vec<&str> = copy.split(' ').collect();
            for source in &parts[..parts.len() - 1] {
                assert!(repo(source).exists(), "COPY {source}: not in the repo");
                let top = source.trim_end_matches('/');
                let excluded = ignored.iter().any(|i| i.trim_end_matches('/') == top);
                assert!(!excluded, "COPY {source}: excluded by .dockerignore");
            }
        }
    }
}
