//! NATS for the tests of the broker's `--bus nats://…`: the machine's
//! server at 127.0.0.1:4222 (started here if nothing answers, as `.ci/run`
//! starts PostgreSQL), or a private one on a port of its own for a test that
//! stops and restarts it. No NATS server is a failure, never a skip.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SHARED: &str = "127.0.0.1:4222";

/// A `--bus` URL on the machine's NATS with a subject no other test uses
/// (tests run side by side on one server; a deployment's instances share a
/// subject, two deployments must not).
#[expect(
    clippy::zombie_processes,
    reason = "the server started here outlives the test, as the machine's own would"
)]
pub fn bus_url() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    if TcpStream::connect(SHARED).is_err() {
        let _ = spawn(4222);
        wait_until_up(SHARED);
    }
    let mut salt = [0u8; 4];
    getrandom::fill(&mut salt).expect("random bytes");
    format!(
        "nats://{SHARED}?subject=claudemesh.test.p{}.n{}.r{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        u32::from_le_bytes(salt)
    )
}

/// A NATS server of this test's own, on a free port; stopped when dropped.
pub struct PrivateNats {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self { port, child: None };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: its clients see the connection drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(self.port));
        wait_until_up(&format!("127.0.0.1:{}", self.port));
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16) -> Child {
    // Debian installs it in /usr/sbin, not always on a user's PATH.
    let binary = if std::path::Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    };
    Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("the NATS tests need nats-server (Debian's nats-server): {err}")
        })
}

fn wait_until_up(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "no NATS server came up at {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
