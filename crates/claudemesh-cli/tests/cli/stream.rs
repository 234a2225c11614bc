//! `claudemesh stream subscribe` of the real binary against the real
//! server: presence, status, summary, a message opened on this machine and
//! log entries as they happen; the subscriber in nobody's peer list and
//! taking no message away; the end on SIGTERM and on a closed stdout; bad
//! input.

use crate::harness::*;
use claudemesh_api::broker::PeerStatus;

on_both_engines!(stream_subscribe_shows_what_happens_and_stays_out_of_sight);

/// The next JSON line on stdout that `wanted` accepts (the others are
/// passed over: log entries and presence interleave).
async fn event_where(stream: &mut Streaming, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let event = stream.stdout_json(what).await;
        if wanted(&event) {
            return event;
        }
    }
}

async fn stream_subscribe_shows_what_happens_and_stays_out_of_sight(engine: Engine) {
    let DevMesh(_server, mesh, [alices, bobs]) = DevMesh::start(engine, ["Alice", "Bob"]).await;
    let mut watch = alices.cmd(["stream", "subscribe", "--json"]).stream();
    watch
        .stderr_where("that it watches", |l| {
            l.starts_with(&format!("✔ Watching {}", mesh.slug))
                && l.contains("presence, status, summary, messages, log")
        })
        .await;

    // Bob comes (a session of the client library on his key, as `launch`
    // would): Alice's subscriber sees him join, then change status and
    // summary.
    let bob = mesh.connect(1).await;
    let joined = event_where(&mut watch, "Bob joining", |e| e["event"] == "presence").await;
    assert_eq!(joined["change"], "joined");
    assert_eq!(joined["mesh"], mesh.slug.as_str());
    assert_eq!(joined["peer"]["display_name"], "Bob");
    assert_eq!(joined["peer"]["session_key"], bob.session_key());
    bob.set_status(PeerStatus::Working).unwrap();
    let status = event_where(&mut watch, "Bob's status", |e| e["event"] == "status").await;
    assert_eq!(status["status"], "working");
    assert_eq!(status["was"], "idle");
    bob.set_summary("Reviewing the broker change").unwrap();
    let summary = event_where(&mut watch, "Bob's summary", |e| e["event"] == "summary").await;
    assert_eq!(summary["summary"], "Reviewing the broker change");
    assert_eq!(summary["peer"]["display_name"], "Bob");

    // The subscriber is in nobody's peer list: for Bob, Alice is offline.
    let peers = bobs.cmd(["peers", "--json"]).run().await.expect_code(0);
    let listed = peers.stdout_json();
    assert!(
        listed["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["display_name"] != "Alice"),
        "{listed}"
    );
    assert!(
        listed["offline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["display_name"] == "Alice"),
        "{listed}"
    );

    // Bob sends Alice a message from his machine: the subscriber shows it
    // opened, and the log shows its metadata.
    bobs.cmd(["send", "Alice", "the release is tagged"])
        .run()
        .await
        .expect_code(0);
    let message = event_where(&mut watch, "Bob's message", |e| e["event"] == "messages").await;
    assert_eq!(message["message"]["text"], "the release is tagged");
    assert_eq!(message["message"]["from"]["display_name"], "Bob");
    assert_eq!(message["message"]["kind"], "direct");
    let logged = event_where(&mut watch, "the message's log entry", |e| {
        e["event"] == "log" && e["entry"]["kind"] == "message.sent"
    })
    .await;
    assert!(
        !logged.to_string().contains("the release is tagged"),
        "the log holds no text: {logged}"
    );

    // SIGTERM ends it cleanly.
    watch.signal("TERM");
    let (code, stderr) = watch.finish().await;
    assert_eq!(code, 0, "{stderr}");

    // The message is still Alice's: her own inbox gets it.
    let inbox = alices.cmd(["inbox", "--json"]).run().await.expect_code(0);
    let messages = inbox.stdout_json()["messages"].clone();
    assert_eq!(messages[0]["text"], "the release is tagged", "{messages}");
    drop(bob);
}

#[tokio::test]
async fn stream_subscribe_text_lines_and_an_end_once_its_reader_is_gone() {
    let DevMesh(_server, mesh, [alices, _bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;
    // Three sessions of Bob's are there when the subscription begins.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(mesh.connect(1).await);
    }
    let mut invocation = alices.cmd(["stream", "subscribe", "--events", "presence"]);
    invocation
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = invocation
        .command
        .spawn()
        .expect("the claudemesh binary starts");
    let stdout = child.stdout.take().unwrap();
    // Read three lines, then close the pipe as `| head -3` would.
    let lines = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        (0..3)
            .map(|_| {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                line
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for line in &lines {
        assert_eq!(line, "presence  Bob is here\n");
    }
    // Nothing else happens in the mesh: it ends anyway, exit 0.
    let status = exit_of(&mut child).await.expect("stream subscribe exits");
    assert_eq!(status.code(), Some(0));
    drop(sessions);
}

#[tokio::test]
async fn stream_subscribe_refuses_an_unknown_event_or_mesh() {
    let DevMesh(_server, _mesh, [alices]) = DevMesh::start(Engine::Sqlite, ["Alice"]).await;
    let out = alices
        .cmd(["stream", "subscribe", "--events", "presence,typing"])
        .says(3, "✘ Unknown event `typing` in --events")
        .await;
    out.stderr_has("presence, status, summary, messages, log");
    assert!(out.stdout.is_empty());
    alices
        .cmd(["stream", "subscribe", "--mesh", "nope"])
        .says(5, "No mesh called `nope` is joined on this machine")
        .await;
}
