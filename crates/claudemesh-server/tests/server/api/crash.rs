//! Nothing acknowledged is lost when the server is killed: the real
//! `claudemesh-server` binary, SIGKILLed while messages are being sent, then
//! started again on the same data.

use super::broker::Mesh;
use claudemesh_api::broker::Priority;
use claudemesh_client::Event;
use claudemesh_testkit::Engine;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_engines!(every_acknowledged_message_survives_a_sigkill);

const MARKER: &str = "CRASH-MARKER-c41f";

/// Starts the server binary on the test server's port and data, with the
/// send rate lifted and a chatty log, and waits until it answers.
async fn start_binary(config: &claudemesh_server::Config, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_claudemesh-server"));
    command
        .env("CLAUDEMESH_BIND", &config.bind)
        .env(
            "CLAUDEMESH_PUBLIC_URL",
            config.public_url.as_deref().unwrap(),
        )
        .env("CLAUDEMESH_DATA_DIR", &config.data_dir)
        .env("CLAUDEMESH_BROKER_SENDS_PER_MINUTE", "0")
        .env("CLAUDEMESH_LOG_FORMAT", "text")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    match &config.database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command.spawn().expect("the server binary starts");
    let health = format!("{}/healthz", config.public_url.as_deref().unwrap());
    for _ in 0..200 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server binary did not come up");
}

async fn every_acknowledged_message_survives_a_sigkill(engine: Engine) {
    let mut mesh = Mesh::of(engine, &["Alice", "Bob"]).await;
    mesh.server.stop().await;
    let config = mesh.server.config().clone();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let mut server = start_binary(&config, &log).await;

    // Two of Alice's sessions send to Bob, who is offline (so every message
    // must wait in the database), until the server dies under them.
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let mut senders = Vec::new();
    for session in 0..2 {
        let alice = mesh.connect(0).await;
        let acked = Arc::clone(&acked);
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let text = format!("{MARKER} {session}-{i}");
                match alice.send("Bob", &text, Priority::Next).await {
                    Ok(sent) => {
                        acked.lock().unwrap().insert(sent.id, text);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "only {} messages were acknowledged",
        acked.len()
    );
    eprintln!("{} messages acknowledged before the kill", acked.len());

    // Started again on the same data, with no repair: Bob gets every one.
    let mut server = start_binary(&config, &log).await;
    let bob = mesh.connect(1).await;
    let mut received = HashMap::new();
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        while !acked.keys().all(|id| received.contains_key(id)) {
            match bob.next_event().await {
                Some(Event::Message(m)) => {
                    received.insert(m.id, m.text);
                }
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    let missing: Vec<&String> = acked
        .keys()
        .filter(|id| !received.contains_key(*id))
        .collect();
    assert!(
        all.is_ok() && missing.is_empty(),
        "{} acknowledged messages lost",
        missing.len()
    );
    for (id, text) in &acked {
        assert_eq!(received.get(id), Some(text));
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // The server's own log never saw a message in clear.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("listening on") || log.contains("DEBUG"),
        "the log was written"
    );
    assert!(
        !log.contains(MARKER),
        "a message text reached the server log"
    );
}
