//! The PBX side for the Kamailio tests: a real `kamailio` running a recipe
//! from docs/recipes/kamailio unmodified (settings come in as `-A` defines),
//! and a small SIP-over-UDP client built with `rsip`.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, SipMessage};
use tokio::net::UdpSocket;

const INSTALL: &str = "install it with: apt-get update && apt-get install -y kamailio \
    kamailio-utils-modules kamailio-json-modules (.ci/run does this)";

/// A recipe file as the README links it.
pub fn recipe(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/recipes/kamailio")
        .join(name)
}

/// The `kamailio` binary; without it the test fails saying how to get it.
fn binary() -> PathBuf {
    ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| which("kamailio"))
        .unwrap_or_else(|| panic!("kamailio is not installed; {INSTALL}"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

/// `kamailio -c`: the recipe parses and its modules load, with `defines`.
pub fn check(name: &str, defines: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.arg("-c").arg("-f").arg(recipe(name));
    for (key, value) in defines {
        cmd.arg("-A").arg(format!("{key}={value}"));
    }
    cmd.output().expect("kamailio -c runs")
}

/// A `-A` define holding a string (the recipe's defines are quoted strings).
pub fn quoted(value: &str) -> String {
    format!("\"{value}\"")
}

/// A running Kamailio, in its own process group, stopped on drop.
pub struct Kamailio {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    /// Start `name` on a free UDP port of 127.0.0.1 and wait until it
    /// answers OPTIONS; a Kamailio that cannot start fails the test with
    /// its log.
    pub async fn start(name: &str, defines: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_udp_port();
        let log = dir.path().join("kamailio.log");
        let mut cmd = Command::new(binary());
        cmd.args(["-DD", "-E", "-n", "2", "-m", "32", "-M", "8"])
            .arg("-f")
            .arg(recipe(name))
            .arg("-l")
            .arg(format!("udp:{addr}"))
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"));
        for (key, value) in defines {
            cmd.arg("-A").arg(format!("{key}={value}"));
        }
        let stderr = File::create(&log).unwrap();
        // Its own group, so drop stops the workers it forks too.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kamailio ({e}); {INSTALL}"));
        let mut kamailio = Self {
            child,
            addr,
            log,
            _dir: dir,
        };
        kamailio.wait_ready().await;
        kamailio
    }

    async fn wait_ready(&mut self) {
        let client = SipClient::new(self.addr).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
            let probe = client.request(Method::Options, "sip:ping@127.0.0.1", vec![]);
            if client
                .try_send(&probe, Duration::from_millis(200))
                .await
                .is_some()
            {
                return;
            }
        }
        panic!(
            "kamailio did not answer OPTIONS within 10 s:\n{}",
            self.log()
        );
    }

    /// What Kamailio logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // SIGTERM lets the main process stop its children; SIGKILL the
        // group if that takes too long.
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..40 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// A UAC on its own UDP port: builds requests with rsip, parses replies.
pub struct SipClient {
    socket: UdpSocket,
    server: SocketAddr,
}

impl SipClient {
    pub async fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self { socket, server }
    }

    /// A fresh out-of-dialog request (new Call-ID, branch and tag).
    pub fn request(&self, method: Method, uri: &str, extra: Vec<Header>) -> rsip::Request {
        let local = self.socket.local_addr().unwrap();
        let fresh = || uuid::Uuid::new_v4().simple().to_string();
        let mut headers: Vec<Header> = vec![
            rsip::headers::Via::new(format!("SIP/2.0/UDP {local};branch=z9hG4bK{}", fresh()))
                .into(),
            rsip::headers::MaxForwards::new("70").into(),
            rsip::headers::From::new(format!("<sip:agent@ga.example.com>;tag={}", fresh())).into(),
            rsip::headers::To::new(format!("<{uri}>")).into(),
            rsip::headers::CallId::new(format!("{}@ga.example.com", fresh())).into(),
            rsip::headers::CSeq::new(format!("1 {method}")).into(),
        ];
        headers.extend(extra);
        headers.push(rsip::headers::ContentLength::new("0").into());
        rsip::Request {
            method,
            uri: rsip::Uri::try_from(uri).expect("a valid request-URI"),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: vec![],
        }
    }

    /// Send and return the final response; fails the test after `wait`.
    pub async fn send(&self, request: &rsip::Request, wait: Duration) -> rsip::Response {
        self.try_send(request, wait)
            .await
            .unwrap_or_else(|| panic!("no final response to {} within {wait:?}", request.method))
    }

    /// Send once (no retransmissions: a lost datagram on loopback is a bug)
    /// and wait for the final response, skipping provisional ones.
    pub async fn try_send(
        &self,
        request: &rsip::Request,
        wait: Duration,
    ) -> Option<rsip::Response> {
        let bytes = SipMessage::from(request.clone()).to_string();
        self.socket
            .send_to(bytes.as_bytes(), self.server)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65_535];
        loop {
            let (n, _) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf))
                .await
                .ok()?
                .unwrap();
            let message = SipMessage::try_from(&buf[..n]).expect("a parseable SIP reply");
            if let SipMessage::Response(response) = message
                && response.status_code.code() >= 200
            {
                return Some(response);
            }
        }
    }
}

/// The raw value of the first header called `name` in a parsed reply.
pub fn header_value(response: &rsip::Response, name: &str) -> Option<String> {
    response.headers.iter().find_map(|header| match header {
        Header::Contact(contact) if name.eq_ignore_ascii_case("contact") => {
            Some(contact.value().to_string())
        }
        Header::RetryAfter(retry) if name.eq_ignore_ascii_case("retry-after") => {
            Some(retry.value().to_string())
        }
        Header::Other(key, value) if key.eq_ignore_ascii_case(name) => Some(value.clone()),
        _ => None,
    })
}
