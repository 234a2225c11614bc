//! Nothing acknowledged is lost when the server is killed: the real
//! `claudemesh-server` binary, SIGKILLed in the middle of concurrent writes
//! (broker messages; sign-ups, PATs, device-code approvals and claims,
//! meshes, invite acceptances), then started again on the same data with no
//! repair.

use claudemesh_api::broker::Priority;
use claudemesh_client::Event;
use claudemesh_testkit::{Engine, TestServer};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_both_engines!(
    every_acknowledged_message_survives_a_sigkill,
    every_acknowledged_write_survives_a_sigkill,
);

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
        // The writers come from one address as fast as they can.
        .env("CLAUDEMESH_TOKEN_REQUESTS_PER_MINUTE", "0")
        .env("CLAUDEMESH_DEVICE_CODES_PER_IP_PER_MINUTE", "0")
        .env("CLAUDEMESH_SIGN_UPS_PER_IP_PER_MINUTE", "0")
        .env("CLAUDEMESH_SIGN_INS_PER_IP_PER_MINUTE", "0")
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
    let mut in_process = TestServer::start(engine).await;
    let mesh = in_process.mesh(&["Alice", "Bob"]).await;
    in_process.stop().await;
    let config = in_process.config().clone();
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

/// The writes the server answered 2xx to before it was killed.
#[derive(Default, Clone)]
struct Acknowledged {
    /// Emails of accounts created.
    sign_ups: Vec<String>,
    /// PATs created.
    pats: Vec<String>,
    /// Device codes whose approval was answered 200 (claimed or not).
    approved: Vec<String>,
    /// Session tokens a poll handed out.
    claimed: Vec<String>,
    /// Meshes created (by Ada).
    meshes: Vec<String>,
    /// Meshes Joe joined through an invite.
    joined: Vec<String>,
}

fn random_hex_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    data_encoding::HEXLOWER.encode(&bytes)
}

/// `(status, body)`, or `None` when the server is gone.
async fn call(request: reqwest::RequestBuilder) -> Option<(u16, serde_json::Value)> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

async fn every_acknowledged_write_survives_a_sigkill(engine: Engine) {
    use serde_json::json;
    let mut server = claudemesh_testkit::TestServer::start(engine).await;
    let ada = server.register("Ada").await;
    let joe = server.register("Joe").await;
    let token = super::support::login(&server, &ada).await;
    server.stop().await;
    let config = server.config().clone();
    let base = config.public_url.clone().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let mut child = start_binary(&config, &log).await;

    let acked: Arc<Mutex<Acknowledged>> = Arc::default();
    let url = |path: &str| format!("{base}{path}");
    let mut writers = Vec::new();

    // Sign-ups.
    writers.push(tokio::spawn({
        let (acked, url) = (Arc::clone(&acked), url(""));
        async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let email = format!("crash.{i}@example.com");
                let body = json!({ "email": email, "password": claudemesh_testkit::DEFAULT_PASSWORD, "name": format!("Crash {i}") });
                match call(client.post(format!("{url}/api/auth/register")).json(&body)).await {
                    Some((201, _)) => acked.lock().unwrap().sign_ups.push(email),
                    Some((status, body)) => panic!("sign-up answered {status}: {body}"),
                    None => return,
                }
            }
        }
    }));
    // PATs.
    writers.push(tokio::spawn({
        let (acked, url, token) = (Arc::clone(&acked), url(""), token.clone());
        async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let request = client
                    .post(format!("{url}/api/my/cli/tokens"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("crash-{i}") }));
                match call(request).await {
                    Some((201, body)) => {
                        let pat = body["token"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().pats.push(pat);
                    }
                    Some((status, body)) => panic!("PAT answered {status}: {body}"),
                    None => return,
                }
            }
        }
    }));
    // Device codes: started, approved by Ada, claimed by the first poll.
    writers.push(tokio::spawn({
        let (acked, url, browser) = (Arc::clone(&acked), url(""), ada.browser.clone());
        async move {
            let client = reqwest::Client::new();
            loop {
                let device = json!({ "device_name": "crash-box", "device_os": "linux", "device_arch": "x86_64" });
                let Some((200, code)) =
                    call(client.post(format!("{url}/api/auth/cli/device-code")).json(&device)).await
                else {
                    return;
                };
                let device_code = code["device_code"].as_str().unwrap().to_owned();
                let user_code = code["user_code"].as_str().unwrap();
                let approve = browser.post(format!(
                    "{url}/api/auth/cli/device-code/{user_code}/approve"
                ));
                match call(approve).await {
                    Some((200, _)) => acked.lock().unwrap().approved.push(device_code.clone()),
                    Some((status, body)) => panic!("approval answered {status}: {body}"),
                    None => return,
                }
                let poll = client.get(format!("{url}/api/auth/cli/device-code/{device_code}"));
                match call(poll).await {
                    Some((200, body)) => {
                        let session = body["token"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().claimed.push(session);
                    }
                    Some((status, body)) => panic!("the claim answered {status}: {body}"),
                    None => return,
                }
            }
        }
    }));
    // Meshes, each with an invite Joe accepts.
    writers.push(tokio::spawn({
        let (acked, url, token, joe) = (
            Arc::clone(&acked),
            url(""),
            token.clone(),
            joe.browser.clone(),
        );
        async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let create = client
                    .post(format!("{url}/api/my/meshes"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("Crash {i}"), "public_key": random_hex_key() }));
                let slug = match call(create).await {
                    Some((201, mesh)) => mesh["slug"].as_str().unwrap().to_owned(),
                    Some((status, body)) => panic!("mesh answered {status}: {body}"),
                    None => return,
                };
                acked.lock().unwrap().meshes.push(slug.clone());
                let invite = client
                    .post(format!("{url}/api/my/meshes/{slug}/invites"))
                    .bearer_auth(&token)
                    .json(&json!({}));
                let code = match call(invite).await {
                    Some((201, invite)) => invite["code"].as_str().unwrap().to_owned(),
                    Some((status, body)) => panic!("invite answered {status}: {body}"),
                    None => return,
                };
                let accept = joe
                    .post(format!("{url}/api/invites/{code}/accept"))
                    .json(&json!({ "public_key": random_hex_key() }));
                match call(accept).await {
                    Some((200, _)) => acked.lock().unwrap().joined.push(slug),
                    Some((status, body)) => panic!("acceptance answered {status}: {body}"),
                    None => return,
                }
            }
        }
    }));

    // Kill once every kind of write has been acknowledged a few times.
    for _ in 0..300 {
        let enough = {
            let a = acked.lock().unwrap();
            [
                &a.sign_ups,
                &a.pats,
                &a.approved,
                &a.claimed,
                &a.meshes,
                &a.joined,
            ]
            .iter()
            .all(|writes| writes.len() >= 3)
        };
        if enough {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "acknowledged before the kill: {} sign-ups, {} PATs, {} approvals, {} claims, {} meshes, {} joins",
        acked.sign_ups.len(),
        acked.pats.len(),
        acked.approved.len(),
        acked.claimed.len(),
        acked.meshes.len(),
        acked.joined.len()
    );
    for (what, writes) in [
        ("sign-ups", &acked.sign_ups),
        ("PATs", &acked.pats),
        ("approvals", &acked.approved),
        ("claims", &acked.claimed),
        ("meshes", &acked.meshes),
        ("joins", &acked.joined),
    ] {
        assert!(
            writes.len() >= 3,
            "only {} {what} before the kill",
            writes.len()
        );
    }

    // Started again on the same data, with no repair: every one is there.
    let mut child = start_binary(&config, &log).await;
    let client = reqwest::Client::new();
    for email in &acked.sign_ups {
        let body = json!({ "email": email, "password": claudemesh_testkit::DEFAULT_PASSWORD });
        let (status, answer) = call(client.post(url("/api/auth/sign-in")).json(&body))
            .await
            .unwrap();
        assert_eq!(status, 200, "{email} cannot sign in: {answer}");
    }
    for credential in acked.pats.iter().chain(&acked.claimed) {
        let (status, answer) = call(client.get(url("/api/my/whoami")).bearer_auth(credential))
            .await
            .unwrap();
        assert_eq!(
            status, 200,
            "a token answered before the kill is refused: {answer}"
        );
        assert_eq!(answer["user"]["email"], ada.email.as_str());
    }
    for device_code in &acked.approved {
        // Claimed before the kill, or claimable now: never back to pending.
        // (A waiting poll, so that the claim's poll a moment ago does not
        // make this one too early.)
        let poll = format!("/api/auth/cli/device-code/{device_code}?wait=1");
        let (status, answer) = call(client.get(url(&poll))).await.unwrap();
        assert_eq!(status, 200, "an approved code: {answer}");
        assert!(
            answer["token"].is_string() || answer["already_claimed"] == true,
            "an approved code lost its approval: {answer}"
        );
    }
    for slug in &acked.meshes {
        let (status, mesh) = call(
            client
                .get(url(&format!("/api/my/meshes/{slug}")))
                .bearer_auth(&token),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "mesh {slug}: {mesh}");
        assert_eq!(mesh["role"], "admin", "{mesh}");
    }
    for slug in &acked.joined {
        let (status, mesh) = call(joe.browser.get(url(&format!("/api/my/meshes/{slug}"))))
            .await
            .unwrap();
        assert_eq!(status, 200, "Joe's membership of {slug}: {mesh}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
