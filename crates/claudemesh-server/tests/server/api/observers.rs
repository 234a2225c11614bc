//! Observer sessions (`hello.observer`, what `claudemesh stream subscribe`
//! connects as) and readers that stop reading.
//!
//! An observer is listed nowhere, counts for nothing, cannot be addressed,
//! sends nothing, sees presence and the messages sealed for its member key,
//! and takes none of them away from the member's own sessions. A mesh log
//! follower or an observer that never reads is dropped after the write
//! stall timeout while the server goes on serving everyone else (whether
//! the server closed its side is read from `/proc/net/tcp`: Linux).

use claudemesh_api::broker::{
    BrokerErrorCode, ClientFrame, Hello, MessageKind, PeerStatus, Priority, ServerFrame,
};
use claudemesh_api::e2e;
use claudemesh_api::mesh_log::LogKind;
use claudemesh_client::{Client, ClientError, Event, Presence};
use claudemesh_server::meshes::log as mesh_log;
use claudemesh_testkit::{Engine, Mesh, Options, TestServer};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::support::{WAIT, get_with_token, next};

on_both_engines!(
    an_observer_is_listed_nowhere_and_sends_nothing,
    an_observer_sees_presence_and_the_members_messages_and_leaves_them_waiting,
    a_log_follower_that_never_reads_is_dropped_and_others_are_served,
    a_members_observers_are_bounded_and_one_that_leaves_makes_room,
    observers_connecting_at_once_cannot_pass_the_limit_together,
);

/// Member `who` (by index) as an observer.
async fn observe(server: &TestServer, mesh: &Mesh, who: usize) -> Client {
    Client::observe(
        &server.base_url,
        mesh.identity(who),
        Presence {
            role: "observer".into(),
            ..mesh.presence(who, &["ops"])
        },
    )
    .await
    .expect("the observer connects")
}

/// A server where a member may have two sessions (and two observers) in a
/// mesh.
async fn two_sessions_a_member(engine: Engine) -> TestServer {
    TestServer::start_with(
        engine,
        Options {
            broker_max_connections_per_member: Some(2),
            ..Options::default()
        },
    )
    .await
}

/// Observers are in no table, so the instance counts them per member,
/// against the same limit as a member's sessions; a member's sessions and
/// another member's observers do not count against them.
async fn a_members_observers_are_bounded_and_one_that_leaves_makes_room(engine: Engine) {
    let server = two_sessions_a_member(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let _alice = mesh.connect(0).await;
    let _bob_watching = observe(&server, &mesh, 1).await;
    let first = observe(&server, &mesh, 0).await;
    let second = observe(&server, &mesh, 0).await;
    let third = Client::observe(&server.base_url, mesh.identity(0), mesh.presence(0, &[])).await;
    assert!(
        matches!(
            third,
            Err(ClientError::Refused {
                code: BrokerErrorCode::TooManyConnections,
                ..
            })
        ),
        "a third observer of Alice's: {:?}",
        third.err()
    );
    drop(first);
    // The server counts the observer out once it sees the socket close.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Client::observe(&server.base_url, mesh.identity(0), mesh.presence(0, &[])).await {
            Ok(_) => break,
            Err(ClientError::Refused {
                code: BrokerErrorCode::TooManyConnections,
                ..
            }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("no room once an observer left: {other}"),
        }
    }
    drop(second);
}

/// Observers of one member connecting at the same moment are admitted up
/// to the limit and no further: each takes its place as it is counted, not
/// once it is registered after the database's answers.
async fn observers_connecting_at_once_cannot_pass_the_limit_together(engine: Engine) {
    let server = two_sessions_a_member(engine).await;
    let mesh = server.mesh(&["Alice"]).await;
    let attempts =
        (0..6).map(|_| Client::observe(&server.base_url, mesh.identity(0), mesh.presence(0, &[])));
    let outcomes = futures_util::future::join_all(attempts).await;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for outcome in outcomes {
        match outcome {
            Ok(observer) => admitted.push(observer),
            Err(ClientError::Refused {
                code: BrokerErrorCode::TooManyConnections,
                ..
            }) => refused += 1,
            Err(other) => panic!("an observer failed otherwise: {other}"),
        }
    }
    assert_eq!((admitted.len(), refused), (2, 4), "admitted, refused");
}

async fn an_observer_is_listed_nowhere_and_sends_nothing(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let bob_watching = observe(&server, &mesh, 1).await;
    // The observer sees Alice; nobody sees the observer.
    assert_eq!(bob_watching.welcome().peers.len(), 1);
    let (peers, _) = alice.peers().await.unwrap();
    assert!(peers.is_empty(), "Alice sees no one else: {peers:?}");
    let ben_later = mesh.connect(1).await;
    let peers = &ben_later.welcome().peers;
    assert_eq!(
        peers
            .iter()
            .map(|p| p.display_name.as_str())
            .collect::<Vec<_>>(),
        ["Alice"],
        "a session connecting later is not told of the observer"
    );
    // Alice's first presence event is Bob's real session, not the observer.
    let joined = next(&alice, |e| match e {
        Event::PeerJoined(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(joined.session_key, ben_later.session_key());
    drop(ben_later);
    next(&alice, |e| matches!(e, Event::PeerLeft(_)).then_some(())).await;
    // A broadcast and a group message find no one: the observer (in @ops)
    // is no recipient.
    for target in ["*", "@ops"] {
        let err = alice
            .send(target, "anyone?", Priority::Next)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Target(_)), "{target}: {err:?}");
    }
    // The mesh page's count of sessions connected now leaves it out.
    let token = mesh.member("Alice").token().await;
    let (status, detail) = get_with_token(
        &server,
        token,
        &format!("/api/my/meshes/{}/members", mesh.slug),
    )
    .await;
    assert_eq!(status, 200, "{detail}");
    let connected: Vec<i64> = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sessions_online"].as_i64().unwrap())
        .collect();
    assert_eq!(connected.iter().sum::<i64>(), 1, "{detail}");

    // It sends nothing: a stable code, and the session goes on.
    let err = bob_watching
        .send("Alice", "psst", Priority::Now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: BrokerErrorCode::Observer,
                ..
            }
        ),
        "{err:?}"
    );
    bob_watching.set_status(PeerStatus::Working).unwrap();
    bob_watching.set_summary("lurking").unwrap();
    alice.set_summary("still here").unwrap();
    let updated = next(&bob_watching, |e| match e {
        Event::PeerUpdated(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(updated.summary, "still here", "the observer still hears");
    // Alice never heard of the observer's status or summary.
    let (peers, _) = alice.peers().await.unwrap();
    assert!(peers.is_empty(), "{peers:?}");
    // The log tells it connected, as an observer.
    let observed = tokio::time::timeout(WAIT, async {
        loop {
            let page = mesh_log::read(
                server.state().pool(),
                &mesh.id,
                &mesh_log::Query {
                    limit: 500,
                    after: Some(0),
                    kind: Some(LogKind::SessionConnected),
                    ..mesh_log::Query::default()
                },
            )
            .await
            .unwrap();
            if let Some(entry) = page.into_iter().find(|e| {
                e.detail.get("session_key").map(String::as_str) == Some(bob_watching.session_key())
            }) {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the observer's connection is logged");
    assert_eq!(observed.detail["observer"], "true");
}

async fn an_observer_sees_presence_and_the_members_messages_and_leaves_them_waiting(
    engine: Engine,
) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob_watching = observe(&server, &mesh, 1).await;
    let alice = mesh.connect(0).await;
    let joined = next(&bob_watching, |e| match e {
        Event::PeerJoined(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(joined.display_name, "Alice");
    alice.set_status(PeerStatus::Working).unwrap();
    let updated = next(&bob_watching, |e| match e {
        Event::PeerUpdated(peer) => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(updated.status, PeerStatus::Working);

    // Bob has no real session: Alice's message waits for his machine key,
    // and the observer (holding that key) reads it as it is stored.
    let sent = alice
        .send("Bob", "the deploy is done", Priority::Now)
        .await
        .unwrap();
    assert!(sent.waits);
    let message = next(&bob_watching, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(message.text, "the deploy is done");
    assert_eq!(message.kind, MessageKind::Direct);
    assert_eq!(message.from.display_name, "Alice");
    // Even acknowledged by hand, it is still Bob's: his next session gets it.
    bob_watching.ack(vec![message.id.clone()]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bob = mesh.connect(1).await;
    let again = next(&bob, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(again.id, message.id);
    assert_eq!(again.text, "the deploy is done");
    // Left: the observer hears Alice go.
    drop(alice);
    next(&bob_watching, |e| {
        matches!(e, Event::PeerLeft(_)).then_some(())
    })
    .await;
}

/// The state of the server's side of a TCP connection, from
/// `/proc/net/tcp` (Linux): `Some("01")` while established, another state
/// (or none) once the server closed it.
fn server_side_state(server_port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |address: &str| {
            address
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        };
        (port(fields.get(1)?) == Some(server_port) && port(fields.get(2)?) == Some(client_port))
            .then(|| fields.get(3).map(|s| (*s).to_owned()))
            .flatten()
    })
}

async fn a_log_follower_that_never_reads_is_dropped_and_others_are_served(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            write_stall_timeout: Some(1),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let token = mesh.member("Alice").token().await.to_owned();
    // A follower with a small receive window that reads nothing after its
    // request.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    let client_port = stuck.local_addr().unwrap().port();
    stuck
        .write_all(
            format!(
                "GET /api/my/meshes/{}/log/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
                mesh.slug
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Let the follower start at the head as it is now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Megabytes of entries, far beyond what the socket buffers hold.
    let pool = server.state().pool();
    let filler = "x".repeat(4000);
    for _ in 0..20 {
        let events: Vec<(i64, mesh_log::LogEvent)> = (0..100)
            .map(|_| {
                (
                    server.state().now(),
                    mesh_log::LogEvent::new(LogKind::InviteRevoked).with("invite_id", &filler),
                )
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        mesh_log::append_many(&mut tx, &mesh.id, &events)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // The server closes its side once its writes have waited for the
    // timeout.
    assert!(
        server_closes(&server, client_port).await,
        "the stalled follower is still connected"
    );
    // What was in flight still drains, then the stream ends: it is finite.
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buffer = vec![0; 64 * 1024];
        let mut total = 0usize;
        loop {
            match stuck.read(&mut buffer).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    })
    .await
    .expect("the dropped stream ends");
    assert!(
        drained < 2_000 * 4_000,
        "the server stopped before sending everything ({drained} bytes)"
    );

    // Everyone else is served: another follower gets the next entry, and
    // the API answers.
    let mut other = reqwest::Client::new()
        .get(server.url(&format!("/api/my/meshes/{}/log/stream", mesh.slug)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    mesh.invite(serde_json::json!({})).await;
    let heard = tokio::time::timeout(WAIT, async {
        let mut text = String::new();
        while let Some(chunk) = other.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("invite.created") {
                return;
            }
        }
        panic!("the other follower's stream ended: {text}");
    })
    .await;
    assert!(heard.is_ok(), "the other follower hears the new entry");
    let (status, _) = get_with_token(&server, &token, "/api/my/whoami").await;
    assert_eq!(status, 200);
}

/// Waits (generously: only a hang fails) until the server has closed its
/// side of the connection from `client_port`.
async fn server_closes(server: &TestServer, client_port: u16) -> bool {
    tokio::time::timeout(Duration::from_secs(60), async {
        while server_side_state(server.port, client_port).as_deref() == Some("01") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

/// On SQLite only: what is tested is the connection, not the store (and
/// the thousands of presence changes it takes are slow on PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_that_never_reads_is_dropped_and_others_are_served() {
    let server = TestServer::start_with(
        Engine::Sqlite,
        Options {
            write_stall_timeout: Some(1),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    // Alice in 20 groups of 40 characters: each of her presence frames is
    // large (about 1.5 KB).
    let groups: Vec<String> = (0..20)
        .map(|n| format!("{n:02}{}", "g".repeat(38)))
        .collect();
    let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
    let alice = mesh.connect_in(0, &groups).await;
    // Bob's observer, over a socket with a small receive window: it says
    // hello, takes the welcome, then reads nothing more.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let url = claudemesh_client::broker_url(&server.base_url);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let frame = |message: Option<Result<Message, _>>| match message {
        Some(Ok(Message::Text(text))) => serde_json::from_str::<ServerFrame>(&text).unwrap(),
        other => panic!("expected a frame, got {other:?}"),
    };
    let ServerFrame::Challenge { challenge, .. } = frame(ws.next().await) else {
        panic!("no challenge");
    };
    let identity = mesh.identity(1);
    let session_key = identity.session.public_hex();
    let hello = Hello {
        version: 1,
        mesh_id: mesh.id.clone(),
        member_key: identity.member.public_hex(),
        session_key: session_key.clone(),
        attestation: identity.attestation.clone(),
        display_name: "Bob".into(),
        role: "observer".into(),
        groups: vec![],
        status: PeerStatus::Idle,
        summary: String::new(),
        signature: identity
            .session
            .sign_hex(&e2e::hello_bytes(&challenge, &mesh.id, &session_key)),
        observer: true,
    };
    ws.send(Message::text(
        serde_json::to_string(&ClientFrame::Hello(hello)).unwrap(),
    ))
    .await
    .unwrap();
    assert!(matches!(frame(ws.next().await), ServerFrame::Welcome(_)));
    // Alice's summary changes, again and again: every change is a frame for
    // the observer, some 12 MB in all, far more than the socket buffers
    // hold (up to 4 MiB on each side here).
    let long = "s".repeat(270);
    for n in 0..8_000 {
        alice.set_summary(&format!("{long}{n}")).unwrap();
    }
    assert!(
        server_closes(&server, client_port).await,
        "the stalled observer is still connected"
    );
    // Alice and the broker are served as ever: her own requests, a new
    // session of Bob's that gets her message, and another observer.
    let (peers, _) = alice.peers().await.unwrap();
    assert!(peers.is_empty(), "{peers:?}");
    let bob = mesh.connect(1).await;
    alice
        .send("Bob", "still here?", Priority::Now)
        .await
        .unwrap();
    let message = next(&bob, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(message.text, "still here?");
    observe(&server, &mesh, 1).await;
    drop(ws);
}
