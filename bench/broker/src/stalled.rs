//! One consumer that stops reading, for `BROKER_LOAD_EXTRA=stopped`.
//!
//! The extra consumer is a member of the load's mesh like the others, but in
//! a process of its own (`broker-load extra URL MESH_ID SECRET_HEX`), so
//! that it can be stopped with SIGSTOP: its socket then really fills, as a
//! laptop's does when its lid closes. (In this process the client library
//! would keep reading into memory however slowly its events were taken.)
//! With `BROKER_LOAD_EXTRA=running` the same consumer receives the same
//! traffic and is never stopped: the run to compare with.
//!
//! At the end it is continued, told how many messages were acknowledged
//! for it, and answers how many distinct ones it decrypted: a stalled
//! consumer must get everything afterwards, not only cost nothing now.

use crate::session::connect;
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::Event;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the extra consumer waits, after being continued, for a message
/// it has not seen yet before it reports what it has.
const QUIET_FOR: Duration = Duration::from_secs(30);

/// The extra consumer's process, seen from the load.
pub struct Extra {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stopped: bool,
    pub session_key: String,
}

impl Extra {
    /// Starts the consumer as `member` of `mesh_id`, and stops it once it is
    /// connected when `stop` is set.
    pub fn start(url: &str, mesh_id: &str, member: &KeyPair, stop: bool) -> Result<Self, BoxError> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["extra", url, mesh_id, &member.secret_hex()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut session_key = String::new();
        stdout.read_line(&mut session_key)?;
        let session_key = session_key.trim().to_owned();
        if session_key.is_empty() {
            return Err("the extra consumer did not connect".into());
        }
        let extra = Self {
            child,
            stdin,
            stdout,
            stopped: false,
            session_key,
        };
        if stop {
            extra.signal("STOP")?;
        }
        Ok(Self {
            stopped: stop,
            ..extra
        })
    }

    fn signal(&self, name: &str) -> Result<(), BoxError> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(format!("kill -{name} failed").into());
        }
        Ok(())
    }

    /// Continues the consumer if it was stopped, tells it how many messages
    /// were acknowledged for it, and returns what it received.
    pub fn finish(mut self, expected: u64) -> Result<Value, BoxError> {
        if self.stopped {
            self.signal("CONT")?;
        }
        writeln!(self.stdin, "{expected}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let _ = self.child.wait();
        Ok(serde_json::from_str(&line)?)
    }
}

/// The consumer's own side: connects, prints its session key, decrypts
/// whatever comes, and when told how many to expect on stdin, waits for
/// them (or for `QUIET_FOR` without a new one) and prints its counts.
pub async fn run(url: &str, mesh_id: &str, secret_hex: &str) -> Result<(), BoxError> {
    let member = KeyPair::from_secret_hex(secret_hex).ok_or("bad member key")?;
    let client = connect(url, mesh_id, &member, "extra").await?;
    println!("{}", client.session_key());
    std::io::stdout().flush()?;
    let seen = Arc::new(Mutex::new((HashSet::new(), 0u64, None::<String>)));
    let reader = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(event) = client.next_event().await {
                let mut seen = seen.lock().expect("not poisoned");
                match event {
                    Event::Message(message) if !seen.0.insert(message.id.clone()) => seen.1 += 1,
                    Event::Closed { code, message } => {
                        seen.2 = Some(format!("{code:?}: {message}"));
                    }
                    _ => {}
                }
            }
        })
    };
    let expected: u64 = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??
    .trim()
    .parse()?;
    let count = || seen.lock().expect("not poisoned").0.len() as u64;
    let (mut last, mut since) = (count(), Instant::now());
    while count() < expected && since.elapsed() < QUIET_FOR {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if count() != last {
            (last, since) = (count(), Instant::now());
        }
    }
    reader.abort();
    let seen = seen.lock().expect("not poisoned");
    println!(
        "{}",
        json!({
            "expected": expected,
            "received": seen.0.len(),
            "duplicates": seen.1,
            "closed": seen.2,
        })
    );
    Ok(())
}
