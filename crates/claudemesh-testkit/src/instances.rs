//! Instances of the real `claudemesh-server` binary on one PostgreSQL
//! database, each a process of its own, so that killing one is a real
//! SIGKILL: the kernel closes its sockets, nothing is flushed, nobody is
//! told goodbye.
//!
//! Each listens on a loopback port it keeps across restarts (a supervisor
//! restarting a service brings it back at the same address), with the
//! broker's send rate and size limits lifted as `bench/broker.sh` lifts
//! them, and logs (warnings and up, as text) to `instance-N.log` in the
//! data root.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting instance may take to answer `/readyz` (a debug
/// build on a loaded two-core machine included).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start each instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `claudemesh-server` binary.
    pub binary: PathBuf,
    /// `postgres://…`: the one database of every instance, migrated by the
    /// first to start.
    pub database_url: String,
    /// Where each instance's data directory and log go.
    pub data_root: PathBuf,
    /// More command-line arguments for every instance.
    pub extra_args: Vec<String>,
}

/// The running instances; dropping them kills them.
pub struct Instances {
    settings: Settings,
    ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Instances {
    /// Starts `count` instances one after the other (so that only the
    /// first runs the migrations of a fresh database), each once it answers.
    pub async fn start(settings: Settings, count: usize) -> Self {
        let mut instances = Self {
            ports: free_ports(count),
            children: (0..count).map(|_| None).collect(),
            settings,
        };
        for i in 0..count {
            instances.restart(i).await;
        }
        instances
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Each instance's address, for the forwarder.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.ports
            .iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
            .collect()
    }

    /// `http://` and instance `i`'s own address.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Kills instance `i` with SIGKILL (what `Child::kill` sends on Unix)
    /// and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts instance `i` again on its port (killing it first if it
    /// runs), and waits until it answers `/readyz`.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        let data_dir = self.settings.data_root.join(format!("instance-{i}"));
        std::fs::create_dir_all(&data_dir).expect("an instance's data directory");
        let log_path = self.settings.data_root.join(format!("instance-{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("an instance's log");
        let bind = format!("127.0.0.1:{}", self.ports[i]);
        let child = Command::new(&self.settings.binary)
            .args(&self.settings.extra_args)
            .env("CLAUDEMESH_BIND", &bind)
            .env("CLAUDEMESH_PUBLIC_URL", self.url(i))
            .env("CLAUDEMESH_DATA_DIR", &data_dir)
            .env("DATABASE_URL", &self.settings.database_url)
            .env("CLAUDEMESH_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            // The load, not the limits, is what is measured; the accounts
            // are all made from this one address.
            .env("CLAUDEMESH_BROKER_SENDS_PER_MINUTE", "0")
            .env("CLAUDEMESH_BROKER_MAX_PEERS", "100000")
            .env("CLAUDEMESH_BROKER_MAX_CONNECTIONS_PER_MEMBER", "100000")
            .env("CLAUDEMESH_SIGN_UPS_PER_IP_PER_MINUTE", "0")
            .env("CLAUDEMESH_SIGN_INS_PER_IP_PER_MINUTE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the server binary starts");
        self.children[i] = Some(child);
        self.wait_ready(i, &log_path).await;
    }

    async fn wait_ready(&mut self, i: usize, log: &Path) {
        let ready = format!("{}/readyz", self.url(i));
        let http = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if http
                .get(&ready)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.children[i].as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("instance {i} exited ({status}) while starting:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("instance {i} did not answer /readyz within {START_TIMEOUT:?}");
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// `count` distinct loopback ports free now (bound together, then let go):
/// each instance binds its own again at every start.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("a bound address").port())
        .collect()
}
