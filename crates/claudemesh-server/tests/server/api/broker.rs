//! The broker over a real WebSocket: handshake refusals, presence, every
//! kind of message end to end, offline delivery, priorities, limits, bad
//! frames, removals, and two instances on one PostgreSQL database.

use super::support::{WAIT, next};
use claudemesh_api::broker::{
    BrokerErrorCode, ClientFrame, DeliveryState, Hello, MessageKind, PeerStatus, Priority,
    ServerFrame,
};
use claudemesh_api::e2e::{self, KeyPair};
use claudemesh_client::{Client, ClientError, Event, SessionIdentity, broker_url};
use claudemesh_server::clock::Clock;
use claudemesh_testkit::nats::PrivateNats;
use claudemesh_testkit::{Engine, Mesh, MeshOptions, Options, TestServer};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

on_both_engines!(
    peers_see_each_other_come_and_go,
    direct_member_group_and_broadcast_messages_arrive_decrypted,
    every_handshake_refusal_says_why,
    a_message_to_an_offline_member_waits_for_their_next_session,
    an_unacknowledged_message_comes_again_after_a_reconnect,
    a_busy_session_gets_only_now_until_it_is_idle,
    sending_faster_than_the_rate_is_refused_with_a_wait,
    bad_frames_get_an_error_and_a_close,
    a_removed_member_is_disconnected_and_refused,
    the_server_never_holds_a_readable_message,
    unknown_recipients_and_bad_sends_are_refused_without_closing,
    frames_larger_than_a_fragment_arrive_whole,
    an_online_recipient_gets_a_message_while_it_is_stored,
    sessions_connecting_at_once_each_see_all_the_others,
    a_session_connecting_again_closes_its_older_connection,
    a_full_mesh_and_a_member_at_their_limit_refuse_with_their_codes,
    sessions_connecting_at_once_cannot_pass_the_limits_together,
    a_waiting_message_that_could_not_be_read_comes_once_the_table_can_be,
    a_waiting_message_this_build_cannot_read_keeps_no_other_back,
    a_session_whose_welcome_fails_leaves_nothing_behind,
);

async fn next_text(client: &Client) -> (String, String) {
    next(client, |event| match event {
        Event::Message(m) => Some((m.from.display_name, m.text)),
        _ => None,
    })
    .await
}

/// Nothing but presence arrives for a moment.
async fn no_message(client: &Client) {
    let quiet = tokio::time::timeout(Duration::from_millis(400), async {
        loop {
            match client.next_event().await {
                Some(Event::Message(m)) => return Some(m.text),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await;
    assert!(
        quiet.is_err() || quiet == Ok(None),
        "unexpected message {quiet:?}"
    );
}

/// Why the broker closed the session, which it does within a second.
async fn closed_within_a_second(client: &Client) -> Option<BrokerErrorCode> {
    tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match client.next_event().await {
                Some(Event::Closed { code, .. }) => return code,
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .expect("closed within a second")
}

/// A session of member `who` as `identity` says: refused, or connected.
async fn connect_as(
    mesh: &Mesh,
    who: usize,
    identity: SessionIdentity,
) -> Result<Client, ClientError> {
    mesh.session(identity, mesh.presence(who, &[])).await
}

async fn peers_see_each_other_come_and_go(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect_in(0, &["ops"]).await;
    assert!(alice.welcome().peers.is_empty());
    assert_eq!(alice.welcome().mesh_slug, mesh.slug);
    assert_eq!(alice.welcome().members.len(), 2);

    let bob = mesh.connect(1).await;
    let peers = &bob.welcome().peers;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].display_name, "Alice");
    assert_eq!(peers[0].groups, vec!["ops"]);
    assert_eq!(peers[0].session_key, alice.session_key());

    let joined = next(&alice, |e| match e {
        Event::PeerJoined(p) => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(joined.display_name, "Bob");

    bob.set_status(PeerStatus::Working).unwrap();
    bob.set_summary("reviewing the broker").unwrap();
    let updated = next(&alice, |e| match e {
        Event::PeerUpdated(p) if p.summary == "reviewing the broker" => Some(p),
        _ => None,
    })
    .await;
    assert_eq!(updated.status, PeerStatus::Working);
    let (peers, _) = alice.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].status, PeerStatus::Working);

    let bob_key = bob.session_key().to_owned();
    drop(bob);
    let left = next(&alice, |e| match e {
        Event::PeerLeft(key) => Some(key),
        _ => None,
    })
    .await;
    assert_eq!(left, bob_key);
    assert!(alice.peers().await.unwrap().0.is_empty());
}

async fn direct_member_group_and_broadcast_messages_arrive_decrypted(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let bob_laptop = mesh.connect_in(1, &["backend"]).await;
    let bob_desktop = mesh.connect(1).await;
    let carol = mesh.connect_in(2, &["backend"]).await;

    // To a member by name: every one of their sessions.
    // (two sessions, and Bob's machine key for whichever session is next)
    let sent = alice.send("bob", "hi Bob", Priority::Next).await.unwrap();
    assert_eq!((sent.recipients, sent.kind), (3, MessageKind::Direct));
    assert_eq!(
        next_text(&bob_laptop).await,
        ("Alice".into(), "hi Bob".into())
    );
    assert_eq!(
        next_text(&bob_desktop).await,
        ("Alice".into(), "hi Bob".into())
    );

    // To one session, by a prefix of its key.
    let prefix = &bob_desktop.session_key()[..12];
    alice
        .send(prefix, "desk only", Priority::Next)
        .await
        .unwrap();
    assert_eq!(next_text(&bob_desktop).await.1, "desk only");

    // To a group.
    let sent = carol
        .send("@backend", "backend sync at 3", Priority::Next)
        .await
        .unwrap();
    assert_eq!((sent.recipients, sent.kind), (1, MessageKind::Group));
    let group = next(&bob_laptop, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(group.group.as_deref(), Some("backend"));
    assert_eq!(group.text, "backend sync at 3");

    // To everyone else.
    let sent = bob_laptop.send("*", "lunch?", Priority::Low).await.unwrap();
    assert_eq!(sent.recipients, 3);
    for client in [&alice, &bob_desktop, &carol] {
        let message = next(client, |e| match e {
            Event::Message(m) if m.text == "lunch?" => Some(m),
            _ => None,
        })
        .await;
        assert_eq!(message.kind, MessageKind::Broadcast);
        assert_eq!(message.from.display_name, "Bob");
        assert_eq!(message.priority, Priority::Low);
    }
    no_message(&bob_laptop).await;

    // The sender can ask where each copy stands.
    let status = alice
        .message_status(&sent_id(&alice, "carol").await)
        .await
        .unwrap();
    assert_eq!(status.len(), 2, "the session and the machine key");
}

/// Sends a message and returns its id once it was delivered.
async fn sent_id(from: &Client, to: &str) -> String {
    from.send(to, "status check", Priority::Next)
        .await
        .unwrap()
        .id
}

/// A hello as `identity` would send it, with the parts under test replaced.
async fn raw_hello(
    server: &TestServer,
    identity: &SessionIdentity,
    edit: impl FnOnce(&mut Hello, &str),
) -> (Option<BrokerErrorCode>, Option<u16>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(broker_url(&server.base_url))
        .await
        .unwrap();
    let challenge = match read(&mut socket).await {
        Some(ServerFrame::Challenge { challenge, .. }) => challenge,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let session_key = identity.session.public_hex();
    let mut hello = Hello {
        version: 1,
        mesh_id: identity.mesh_id.clone(),
        member_key: identity.member.public_hex(),
        session_key: session_key.clone(),
        attestation: identity.attestation.clone(),
        display_name: "Tester".into(),
        role: String::new(),
        groups: vec![],
        status: PeerStatus::Idle,
        summary: String::new(),
        observer: false,
        signature: identity.session.sign_hex(&e2e::hello_bytes(
            &challenge,
            &identity.mesh_id,
            &session_key,
        )),
    };
    edit(&mut hello, &challenge);
    let frame = serde_json::to_string(&ClientFrame::Hello(hello)).unwrap();
    socket.send(Message::text(frame)).await.unwrap();
    refusal(&mut socket).await
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn read(socket: &mut RawSocket) -> Option<ServerFrame> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            _ => return None,
        }
    }
}

/// The error code the broker sent and the close code it closed with.
async fn refusal(socket: &mut RawSocket) -> (Option<BrokerErrorCode>, Option<u16>) {
    let mut code = None;
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text).unwrap() {
                ServerFrame::Error { code: c, .. } => code = Some(c),
                ServerFrame::Welcome(_) => return (None, None),
                _ => {}
            },
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (code, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            _ => return (code, None),
        }
    }
}

async fn every_handshake_refusal_says_why(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.identity(0);

    // A correct hello is welcomed.
    assert_eq!(raw_hello(&server, &alice, |_, _| {}).await, (None, None));

    // The session key signs something else than this connection's challenge.
    let wrong = raw_hello(&server, &alice, |hello, _| {
        hello.signature = alice.session.sign_hex(b"something else");
    })
    .await;
    assert_eq!(wrong, (Some(BrokerErrorCode::BadSignature), Some(1008)));

    // A hello recorded on one connection does not open another: replayed,
    // its signature is over the old challenge.
    let mut recorded = None;
    raw_hello(&server, &alice, |hello, _| recorded = Some(hello.clone())).await;
    let replayed = raw_hello(&server, &alice, |hello, _| {
        *hello = recorded.clone().unwrap();
    })
    .await;
    assert_eq!(replayed.0, Some(BrokerErrorCode::BadSignature));

    // An expired attestation, and one too far ahead.
    let now = server.clock.now_ms();
    for (expires_at, code) in [
        (now - 1, BrokerErrorCode::AttestationExpired),
        (now + 25 * 3_600_000, BrokerErrorCode::BadAttestation),
    ] {
        let member = mesh.members[0].key_pair();
        let identity = SessionIdentity::new(&mesh.id, member, expires_at).unwrap();
        assert_eq!(raw_hello(&server, &identity, |_, _| {}).await.0, Some(code));
    }

    // Bob's key attesting a session that claims to be Alice's.
    let bob_member = mesh.members[1].key_pair();
    let forged = SessionIdentity::new(&mesh.id, bob_member, now + 60_000).unwrap();
    let claim = raw_hello(&server, &forged, |hello, _| {
        hello.member_key = mesh.members[0].key.public_hex();
    })
    .await;
    assert_eq!(claim.0, Some(BrokerErrorCode::BadAttestation));

    // An attestation made for another mesh.
    let member = mesh.members[0].key_pair();
    let other_mesh = SessionIdentity::new("msh_other", member, now + 60_000).unwrap();
    let foreign = raw_hello(&server, &other_mesh, |hello, challenge| {
        hello.mesh_id = mesh.id.clone();
        hello.signature = other_mesh.session.sign_hex(&e2e::hello_bytes(
            challenge,
            &mesh.id,
            &other_mesh.session.public_hex(),
        ));
    })
    .await;
    assert_eq!(foreign.0, Some(BrokerErrorCode::BadAttestation));

    // A key that belongs to no member of this mesh, well signed.
    let stranger =
        SessionIdentity::new(&mesh.id, KeyPair::generate().unwrap(), now + 60_000).unwrap();
    let err = connect_as(&mesh, 0, stranger).await.err().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: BrokerErrorCode::NotAMember,
                ..
            }
        ),
        "{err:?}"
    );

    // A member key of another mesh.
    let other = server
        .mesh_with(&["Eve"], MeshOptions::named("Elsewhere"))
        .await;
    let member = mesh.members[0].key_pair();
    let wrong_mesh = SessionIdentity::new(&other.id, member, now + 60_000).unwrap();
    let err = connect_as(&mesh, 0, wrong_mesh).await.err().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: BrokerErrorCode::NotAMember,
                ..
            }
        ),
        "{err:?}"
    );

    // Another protocol version.
    let version = raw_hello(&server, &alice, |hello, _| hello.version = 2).await;
    assert_eq!(version.0, Some(BrokerErrorCode::UnsupportedVersion));
}

async fn a_message_to_an_offline_member_waits_for_their_next_session(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let sent = alice
        .send("Bob", "read this when you are back", Priority::Next)
        .await
        .unwrap();
    assert!(sent.waits, "Bob has no session: the message waits");
    let status = alice.message_status(&sent.id).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].state, DeliveryState::Waiting);
    assert_eq!(status[0].display_name, "Bob");

    let bob = mesh.connect(1).await;
    assert_eq!(
        next_text(&bob).await,
        ("Alice".into(), "read this when you are back".into())
    );
    let delivered = tokio::time::timeout(WAIT, async {
        loop {
            let status = alice.message_status(&sent.id).await.unwrap();
            if status[0].state == DeliveryState::Delivered {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(delivered.is_ok(), "the acknowledgement is recorded");

    // Undelivered for longer than the TTL (7 days): expired, never pushed.
    let late = alice
        .send("Carol", "too late", Priority::Next)
        .await
        .unwrap();
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let status = alice.message_status(&late.id).await.unwrap();
    assert_eq!(status[0].state, DeliveryState::Expired);
}

async fn an_unacknowledged_message_comes_again_after_a_reconnect(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let bob_member = mesh.members[1].key_pair();
    let session_secret = KeyPair::generate().unwrap().secret_hex();
    let expires = server.clock.now_ms() + 3_600_000;
    let bob_identity = |member: &KeyPair| {
        SessionIdentity::with_session(
            &mesh.id,
            KeyPair::from_secret_hex(&member.secret_hex()).unwrap(),
            KeyPair::from_secret_hex(&session_secret).unwrap(),
            expires,
        )
    };
    // Bob's session reads raw frames and never acknowledges.
    let identity = bob_identity(&bob_member);
    let (mut socket, _) = tokio_tungstenite::connect_async(broker_url(&server.base_url))
        .await
        .unwrap();
    let Some(ServerFrame::Challenge { challenge, .. }) = read(&mut socket).await else {
        panic!("no challenge");
    };
    let hello = Hello {
        version: 1,
        mesh_id: mesh.id.clone(),
        member_key: identity.member.public_hex(),
        session_key: identity.session.public_hex(),
        attestation: identity.attestation.clone(),
        display_name: "Bob".into(),
        role: String::new(),
        groups: vec![],
        status: PeerStatus::Idle,
        summary: String::new(),
        observer: false,
        signature: identity.session.sign_hex(&e2e::hello_bytes(
            &challenge,
            &mesh.id,
            &identity.session.public_hex(),
        )),
    };
    socket
        .send(Message::text(
            serde_json::to_string(&ClientFrame::Hello(hello)).unwrap(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        read(&mut socket).await,
        Some(ServerFrame::Welcome(_))
    ));
    let sent = alice
        .send("Bob", "say it twice", Priority::Next)
        .await
        .unwrap();
    let first = loop {
        match read(&mut socket).await {
            Some(ServerFrame::Message(envelope)) => break envelope,
            Some(_) => {}
            None => panic!("no message"),
        }
    };
    assert_eq!(first.id, sent.id);
    drop(socket);

    // The same session reconnects: the message comes again, and the client
    // shows it once.
    let bob = Client::connect(
        &server.base_url,
        bob_identity(&bob_member),
        mesh.presence(1, &[]),
    )
    .await
    .unwrap();
    let again = next(&bob, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(
        (again.id.as_str(), again.text.as_str()),
        (sent.id.as_str(), "say it twice")
    );
    no_message(&bob).await;
}

/// Alice, and Bob at work (once Alice has seen him so).
async fn alice_and_busy_bob(mesh: &Mesh) -> (Client, Client) {
    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    bob.set_status(PeerStatus::Working).unwrap();
    next(&alice, |e| matches!(e, Event::PeerUpdated(_)).then_some(())).await;
    (alice, bob)
}

async fn a_busy_session_gets_only_now_until_it_is_idle(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = alice_and_busy_bob(&mesh).await;

    alice
        .send("Bob", "when you have a minute", Priority::Next)
        .await
        .unwrap();
    alice.send("Bob", "whenever", Priority::Low).await.unwrap();
    alice
        .send("Bob", "prod is down", Priority::Now)
        .await
        .unwrap();
    assert_eq!(next_text(&bob).await.1, "prod is down");
    no_message(&bob).await;

    bob.set_status(PeerStatus::Idle).unwrap();
    let mut held = vec![next_text(&bob).await.1, next_text(&bob).await.1];
    held.sort();
    assert_eq!(held, vec!["when you have a minute", "whenever"]);
}

/// When the table of waiting messages cannot be read (here: renamed away
/// under the server), the session is not left without them until it
/// reconnects: it stays connected, and the read is tried again on its
/// connection until it works.
async fn a_waiting_message_that_could_not_be_read_comes_once_the_table_can_be(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = alice_and_busy_bob(&mesh).await;
    alice
        .send("Bob", "when you have a minute", Priority::Next)
        .await
        .unwrap();
    no_message(&bob).await;

    let pool = server.state().pool();
    sqlx::query("ALTER TABLE broker_deliveries RENAME TO broker_deliveries_away")
        .execute(pool)
        .await
        .unwrap();
    // Back to idle: what was held back is read, and cannot be.
    bob.set_status(PeerStatus::Idle).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.state().broker.backlog_read_failures() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no read failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("ALTER TABLE broker_deliveries_away RENAME TO broker_deliveries")
        .execute(pool)
        .await
        .unwrap();

    // On the same connection, at the next try: tried again after a wait,
    // not over and over.
    assert_eq!(next_text(&bob).await.1, "when you have a minute");
    let failures = server.state().broker.backlog_read_failures();
    assert!(failures <= 3, "{failures} failed reads");
}

/// During an upgrade, instances of two builds share one database, and the
/// newer may store what the older cannot read (here: a kind it does not
/// know, which the newer build's migration would allow). The older build
/// skips that message and delivers the others, instead of failing every
/// read of the recipient's waiting messages.
async fn a_waiting_message_this_build_cannot_read_keeps_no_other_back(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = alice_and_busy_bob(&mesh).await;
    let newer = alice
        .send("Bob", "as a newer build would store it", Priority::Next)
        .await
        .unwrap();
    alice
        .send("Bob", "when you have a minute", Priority::Next)
        .await
        .unwrap();
    no_message(&bob).await;

    let mut conn = server.state().pool().acquire().await.unwrap();
    let allow_any_kind = match engine {
        Engine::Sqlite => "PRAGMA ignore_check_constraints = ON",
        Engine::Postgres => {
            "ALTER TABLE broker_messages DROP CONSTRAINT broker_messages_kind_check"
        }
    };
    sqlx::query(allow_any_kind)
        .execute(&mut *conn)
        .await
        .unwrap();
    let changed = sqlx::query("UPDATE broker_messages SET kind = 'digest' WHERE id = $1")
        .bind(&newer.id)
        .execute(&mut *conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1);
    if engine == Engine::Sqlite {
        sqlx::query("PRAGMA ignore_check_constraints = OFF")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);

    bob.set_status(PeerStatus::Idle).unwrap();
    assert_eq!(next_text(&bob).await.1, "when you have a minute");
    no_message(&bob).await;
    assert_eq!(server.state().broker.backlog_read_failures(), 0);
}

/// A session whose welcome cannot be built (here: the grants table renamed
/// away, which only the welcome reads) after it was registered is refused
/// as `internal`, and leaves as any session does: no one sees it, and it
/// does not count against its member's limit.
async fn a_session_whose_welcome_fails_leaves_nothing_behind(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            broker_max_connections_per_member: Some(1),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let pool = server.state().pool();
    sqlx::query("ALTER TABLE mesh_grants RENAME TO mesh_grants_away")
        .execute(pool)
        .await
        .unwrap();
    match connect_as(&mesh, 0, mesh.identity(0)).await {
        Err(ClientError::Refused {
            code: BrokerErrorCode::Internal,
            ..
        }) => {}
        other => panic!("the welcome could not be built, yet: {:?}", other.err()),
    }
    sqlx::query("ALTER TABLE mesh_grants_away RENAME TO mesh_grants")
        .execute(pool)
        .await
        .unwrap();

    // Alice's one session may be this one: the failed one is gone.
    let alice = connect_as(&mesh, 0, mesh.identity(0))
        .await
        .expect("Alice connects once the welcome can be built");
    let bob = mesh.connect(1).await;
    let peers: Vec<&str> = bob
        .welcome()
        .peers
        .iter()
        .map(|p| p.session_key.as_str())
        .collect();
    assert_eq!(
        peers,
        [alice.session_key()],
        "Bob sees Alice's live session only"
    );
}

async fn sending_faster_than_the_rate_is_refused_with_a_wait(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let _bob = mesh.connect(1).await;
    for i in 0..10 {
        alice
            .send("Bob", &format!("burst {i}"), Priority::Next)
            .await
            .expect("a burst of 10 passes");
    }
    let err = alice
        .send("Bob", "one too many", Priority::Next)
        .await
        .unwrap_err();
    match err {
        ClientError::Refused {
            code: BrokerErrorCode::RateLimited,
            retry_after: Some(wait),
            ..
        } => assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1)),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // The connection stays usable.
    assert!(alice.peers().await.is_ok());
}

async fn bad_frames_get_an_error_and_a_close(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice"]).await;
    let url = broker_url(&server.base_url);
    let cases: Vec<(Message, BrokerErrorCode, u16)> = vec![
        (Message::text("not json"), BrokerErrorCode::BadFrame, 1008),
        (
            Message::text(r#"{"type":"list_peers","req":1}"#),
            BrokerErrorCode::HelloRequired,
            1008,
        ),
        (
            Message::binary(vec![1u8, 2, 3]),
            BrokerErrorCode::BadFrame,
            1008,
        ),
        (
            Message::text("x".repeat(70 * 1024)),
            BrokerErrorCode::FrameTooLarge,
            1009,
        ),
    ];
    for (frame, code, close) in cases {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        assert!(matches!(
            read(&mut socket).await,
            Some(ServerFrame::Challenge { .. })
        ));
        socket.send(frame).await.unwrap();
        assert_eq!(refusal(&mut socket).await, (Some(code), Some(close)));
    }
    // After the hello too: a frame that does not parse closes the session.
    let alice = mesh.connect(0).await;
    alice
        .send_raw(r#"{"type":"ack","ids":[],"extra":true}"#)
        .unwrap();
    let closed = next(&alice, |e| match e {
        Event::Closed { code, .. } => Some(code),
        _ => None,
    })
    .await;
    assert_eq!(closed, Some(BrokerErrorCode::BadFrame));
    // The server is still fine.
    let again = mesh.connect(0).await;
    assert!(again.peers().await.is_ok());
}

async fn a_removed_member_is_disconnected_and_refused(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob = mesh.connect(1).await;
    mesh.remove("Bob").await;
    let closed = closed_within_a_second(&bob).await;
    assert_eq!(closed, Some(BrokerErrorCode::Removed));
    let err = connect_as(&mesh, 1, mesh.identity(1)).await.err().unwrap();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: BrokerErrorCode::NotAMember,
                ..
            }
        ),
        "{err:?}"
    );
}

async fn the_server_never_holds_a_readable_message(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    let marker = "MARKER-7f3a9c-the-broker-must-not-see-this";
    alice.send("Bob", marker, Priority::Next).await.unwrap();
    alice.send("*", marker, Priority::Now).await.unwrap();
    assert_eq!(next_text(&bob).await.1, marker);
    // Offline: sealed for the machine key, still unreadable to the server.
    drop(bob);
    next(&alice, |e| matches!(e, Event::PeerLeft(_)).then_some(())).await;
    alice.send("Bob", marker, Priority::Next).await.unwrap();

    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT m.body, m.body_nonce, d.key_box, d.key_nonce FROM broker_messages m \
         JOIN broker_deliveries d ON d.message_id = m.id",
    )
    .fetch_all(server.state().pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let all = format!("{row:?}");
        assert!(!all.contains(marker) && !all.contains("MARKER"));
    }
    if engine == Engine::Sqlite {
        // The database file itself, WAL included.
        for entry in std::fs::read_dir(&server.config().data_dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "the marker is in a server file"
            );
        }
    }
}

async fn unknown_recipients_and_bad_sends_are_refused_without_closing(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let _bob = mesh.connect(1).await;
    let stranger = KeyPair::generate().unwrap().public_hex();
    let resolved = claudemesh_client::Resolved {
        kind: MessageKind::Direct,
        group: None,
        keys: vec![stranger],
        waits: false,
        sessions: 1,
    };
    let err = alice
        .send_resolved(&resolved, "to no one", Priority::Next)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: BrokerErrorCode::UnknownRecipient,
                ..
            }
        ),
        "{err:?}"
    );
    let err = alice
        .send("nobody-here", "x", Priority::Next)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Target(_)), "{err:?}");
    let long = "x".repeat(claudemesh_api::broker::MAX_MESSAGE_BYTES + 1);
    assert!(matches!(
        alice.send("Bob", &long, Priority::Next).await,
        Err(ClientError::Local(_))
    ));
    assert!(
        alice
            .send("Bob", "still connected", Priority::Next)
            .await
            .is_ok()
    );
}

/// Two instances on one PostgreSQL database act as one broker, told of
/// each other's news through the database's NOTIFY (the default)…
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_database_are_one_broker() {
    two_instances_are_one_broker(None).await;
}

/// …or through NATS (`--bus nats://…`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_nats_bus_are_one_broker() {
    two_instances_are_one_broker(Some(claudemesh_testkit::nats::bus_url())).await;
}

async fn two_instances_are_one_broker(bus: Option<String>) {
    let server = TestServer::start_with(
        Engine::Postgres,
        Options {
            bus,
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let second = server.second_instance().await;
    let second_url = second.base_url.clone();

    let alice = mesh.connect(0).await;
    let bob = Client::connect(&second_url, mesh.identity(1), mesh.presence(1, &[]))
        .await
        .unwrap();
    let carol = Client::connect(&second_url, mesh.identity(2), mesh.presence(2, &[]))
        .await
        .unwrap();
    // Presence is the same from both instances.
    assert_eq!(bob.welcome().peers.len(), 1);
    next(&alice, |e| {
        matches!(e, Event::PeerJoined(p) if p.display_name == "Carol").then_some(())
    })
    .await;
    assert_eq!(alice.peers().await.unwrap().0.len(), 2);
    assert_eq!(carol.peers().await.unwrap().0.len(), 2);

    // A → B and B → A.
    alice
        .send("Bob", "across instances", Priority::Next)
        .await
        .unwrap();
    assert_eq!(
        next_text(&bob).await,
        ("Alice".into(), "across instances".into())
    );
    bob.send("Alice", "and back", Priority::Next).await.unwrap();
    assert_eq!(next_text(&alice).await.1, "and back");

    // Removing Carol through instance A closes her session on B.
    mesh.remove("Carol").await;
    let closed = closed_within_a_second(&carol).await;
    assert_eq!(closed, Some(BrokerErrorCode::Removed));
    second.stop().await;
}

/// NATS going away loses nothing and stalls nothing: while it is down, the
/// instances tell each other through the database's NOTIFY instead, so a
/// message still reaches its recipient on the other instance at once; once
/// NATS is back, the bus carries the next ones as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_nats_bus_is_down_messages_go_through_the_database() {
    let mut nats = PrivateNats::start();
    let server = TestServer::start_with(
        Engine::Postgres,
        Options {
            bus: Some(nats.url()),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let second = server.second_instance().await;
    let alice = mesh.connect(0).await;
    let bob = Client::connect(&second.base_url, mesh.identity(1), mesh.presence(1, &[]))
        .await
        .unwrap();
    alice.send("Bob", "before", Priority::Next).await.unwrap();
    assert_eq!(next_text(&bob).await.1, "before");

    nats.kill();
    // Long enough for the instances to see the connection gone (it is
    // closed at once on loopback); a send before that is still not lost,
    // only later (see the resynchronisation on reconnecting).
    tokio::time::sleep(Duration::from_secs(1)).await;
    for text in ["while the bus is down", "and again"] {
        alice.send("Bob", text, Priority::Next).await.unwrap();
        assert_eq!(next_text(&bob).await.1, text);
    }
    bob.send("Alice", "both ways", Priority::Next)
        .await
        .unwrap();
    assert_eq!(next_text(&alice).await.1, "both ways");

    nats.restart();
    alice.send("Bob", "after", Priority::Next).await.unwrap();
    assert_eq!(next_text(&bob).await.1, "after");
    second.stop().await;
}

/// `--bus` is refused at start when it cannot work: on SQLite (one
/// instance), and a NATS server that does not answer.
#[tokio::test]
async fn a_bus_that_cannot_work_stops_start_up_with_a_clear_message() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = claudemesh_server::Config::for_tests(data_dir.path().to_owned(), None);
    config.bus = Some("nats://127.0.0.1:4222".into());
    let clock = std::sync::Arc::new(claudemesh_server::clock::SystemClock);
    let err = claudemesh_server::Application::build(config, clock.clone())
        .await
        .err()
        .expect("refused on SQLite")
        .to_string();
    assert!(
        err.contains("--bus (CLAUDEMESH_BUS): needs PostgreSQL"),
        "{err}"
    );

    let server = TestServer::start(Engine::Postgres).await;
    let mut config = server.config().clone();
    config.bind = "127.0.0.1:0".into();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    config.bus = Some(format!("nats://127.0.0.1:{port}"));
    let err = claudemesh_server::Application::build(config, clock)
        .await
        .err()
        .expect("refused with no NATS server")
        .to_string();
    assert!(
        err.contains(&format!(
            "cannot connect to NATS at nats://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

/// The broker writes a frame over 2 KiB as fragments (so no idle session
/// keeps a large write buffer); a client sees whole frames as before: a
/// welcome and a peer list of long summaries in characters of several
/// bytes (a fragment may end inside one), and a message near the limit.
async fn frames_larger_than_a_fragment_arrive_whole(engine: Engine) {
    let server = TestServer::start(engine).await;
    let names = ["Ana", "Ben", "Cai", "Dee", "Eli", "Fay", "Gus", "Hal"];
    let mesh = server.mesh(&names).await;
    let summary = |i: usize| format!("{i}{}", "€ñ🙂".repeat(90));
    let mut sessions = Vec::new();
    for i in 0..names.len() {
        let presence = claudemesh_client::Presence {
            summary: summary(i),
            ..mesh.presence(i, &[])
        };
        sessions.push(mesh.session(mesh.identity(i), presence).await.unwrap());
    }
    let last = sessions.last().unwrap();
    let welcome = serde_json::to_string(&last.welcome()).unwrap();
    assert!(
        welcome.len() > 8 * 1024,
        "the welcome spans fragments: {} bytes",
        welcome.len()
    );
    let mut seen: Vec<(String, String)> = last
        .welcome()
        .peers
        .iter()
        .map(|p| (p.display_name.clone(), p.summary.clone()))
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = (0..names.len() - 1)
        .map(|i| (names[i].to_owned(), summary(i)))
        .collect();
    assert_eq!(seen, expected);
    let (mut listed, _) = sessions[0].peers().await.unwrap();
    listed.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    assert_eq!(listed.len(), names.len() - 1);
    assert_eq!(listed[0].summary, summary(1));

    let text = "ü€🙂 a long message ".repeat(500);
    assert!(text.len() > 12 * 1024 && text.len() <= claudemesh_api::broker::MAX_MESSAGE_BYTES);
    sessions[0].send("Hal", &text, Priority::Now).await.unwrap();
    assert_eq!(next_text(last).await, ("Ana".to_owned(), text));
}

/// A request to the broker's address that is not a WebSocket handshake is
/// told what is missing: never a 500, never an upgrade.
#[tokio::test]
async fn a_request_that_is_not_a_websocket_handshake_is_told_so() {
    let server = TestServer::start(Engine::Sqlite).await;
    let url = format!("{}/api/mesh/ws", server.base_url);
    let http = reqwest::Client::new();
    let plain = http.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.text().await.unwrap().contains("WebSocket"));

    let handshake = |version: &'static str| {
        http.get(&url)
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", version)
    };
    let old = handshake("8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
    let keyless = handshake("13").send().await.unwrap();
    assert_eq!(keyless.status(), 400);
    assert!(keyless.text().await.unwrap().contains("Sec-WebSocket-Key"));
    let posted = http.post(&url).send().await.unwrap();
    assert_eq!(posted.status(), 405);
}

/// Holds the database's write lock on the broker's messages until the
/// transaction is dropped: the broker's writer waits meanwhile (SQLite's
/// busy timeout is five seconds), as it would behind a slow disk.
async fn hold_broker_writes(server: &TestServer) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut tx = server.state().pool().begin().await.unwrap();
    let lock = match server.engine {
        Engine::Sqlite => "UPDATE broker_instances SET seen_at = seen_at",
        Engine::Postgres => "LOCK TABLE broker_messages IN SHARE MODE",
    };
    sqlx::query(lock).execute(&mut *tx).await.unwrap();
    tx
}

/// An online recipient does not wait for the database: the message reaches
/// them while it is being stored, the sender's `sent` still comes only once
/// it is stored, and the recipient's acknowledgement is recorded.
async fn an_online_recipient_gets_a_message_while_it_is_stored(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = std::sync::Arc::new(mesh.connect(0).await);
    let bob = mesh.connect(1).await;
    let held = hold_broker_writes(&server).await;
    let sending = tokio::spawn({
        let alice = std::sync::Arc::clone(&alice);
        async move { alice.send("Bob", "before the disk", Priority::Next).await }
    });
    assert_eq!(
        next_text(&bob).await,
        ("Alice".into(), "before the disk".into())
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !sending.is_finished(),
        "the sender heard `sent` before its message was stored"
    );
    held.rollback().await.unwrap();
    let sent = tokio::time::timeout(WAIT, sending)
        .await
        .expect("`sent` once stored")
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = alice.message_status(&sent.id).await.unwrap();
        if status[0].state == DeliveryState::Delivered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Bob's acknowledgement was never recorded: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    no_message(&bob).await;
}

/// Sessions of one mesh connecting in the same moment (as after an
/// instance's restart) share the reads of their welcomes: each still learns
/// of every other, from its welcome or from a join after it (a peer
/// missing from both fails the wait for its join).
async fn sessions_connecting_at_once_each_see_all_the_others(engine: Engine) {
    let server = TestServer::start(engine).await;
    let names = ["Ann", "Ben", "Cat", "Dan", "Eve"];
    let mesh = server.mesh(&names).await;
    let sessions =
        futures_util::future::join_all((0..4 * names.len()).map(|i| mesh.connect(i % names.len())))
            .await;
    let all: std::collections::BTreeSet<String> = sessions
        .iter()
        .map(|s| s.session_key().to_owned())
        .collect();
    for session in &sessions {
        let mut seen: std::collections::BTreeSet<String> = session
            .welcome()
            .peers
            .iter()
            .map(|p| p.session_key.clone())
            .collect();
        assert_eq!(session.welcome().members.len(), names.len());
        seen.insert(session.session_key().to_owned());
        while seen != all {
            let joined = next(session, |e| match e {
                Event::PeerJoined(p) => Some(p.session_key),
                _ => None,
            })
            .await;
            // (A peer that joined while the welcome was read can be in
            // both: the client keeps one.)
            seen.insert(joined);
        }
    }
}

/// The same session identity again (its session key): a reconnect.
fn same_session(identity: &SessionIdentity) -> SessionIdentity {
    SessionIdentity {
        mesh_id: identity.mesh_id.clone(),
        member: KeyPair::from_secret_hex(&identity.member.secret_hex()).unwrap(),
        session: KeyPair::from_secret_hex(&identity.session.secret_hex()).unwrap(),
        attestation: identity.attestation.clone(),
    }
}

/// A session of member `who`, and its identity again, to connect it anew.
async fn connect_to_reconnect(mesh: &Mesh, who: usize) -> (Client, SessionIdentity) {
    let identity = mesh.identity(who);
    let again = same_session(&identity);
    let client = mesh
        .session(identity, mesh.presence(who, &[]))
        .await
        .unwrap();
    (client, again)
}

async fn closed_with(client: &Client) -> Option<BrokerErrorCode> {
    next(client, |e| match e {
        Event::Closed { code, .. } => Some(code),
        _ => None,
    })
    .await
}

async fn a_session_connecting_again_closes_its_older_connection(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let identity = mesh.identity(0);
    let again = same_session(&identity);
    let older = mesh.session(identity, mesh.presence(0, &[])).await.unwrap();
    let bob = mesh.connect(1).await;
    let newer = mesh.session(again, mesh.presence(0, &[])).await.unwrap();
    assert_eq!(newer.session_key(), older.session_key());

    // The older connection is told why it ends; the newer one carries the
    // session: it is the one Bob's message reaches, and the only Alice.
    assert_eq!(closed_with(&older).await, Some(BrokerErrorCode::Replaced));
    bob.send("Alice", "still there?", Priority::Now)
        .await
        .unwrap();
    assert_eq!(
        next_text(&newer).await,
        ("Bob".into(), "still there?".into())
    );
    let (peers, _) = bob.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
}

/// Sessions connecting at the same moment are admitted up to the member's
/// limit and the mesh's, and no further: the count and the session's row
/// are one step, not a count that another admission can overtake before
/// the row is written.
async fn sessions_connecting_at_once_cannot_pass_the_limits_together(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            broker_max_peers: Some(4),
            broker_max_connections_per_member: Some(2),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol", "Dave"]).await;
    /// The sessions admitted, and the codes of those refused (sorted).
    async fn at_once(mesh: &Mesh, who: &[usize]) -> (Vec<Client>, Vec<BrokerErrorCode>) {
        let attempts = who
            .iter()
            .map(|&who| mesh.session(mesh.identity(who), mesh.presence(who, &[])));
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        for outcome in futures_util::future::join_all(attempts).await {
            match outcome {
                Ok(client) => admitted.push(client),
                Err(ClientError::Refused { code, .. }) => refused.push(code),
                Err(other) => panic!("a session failed otherwise: {other}"),
            }
        }
        refused.sort_by_key(|code| code.as_str());
        (admitted, refused)
    }

    let (alices, refused) = at_once(&mesh, &[0, 0, 0, 0, 0]).await;
    assert_eq!(alices.len(), 2, "Alice's sessions admitted");
    assert_eq!(refused, [BrokerErrorCode::TooManyConnections; 3]);

    // Two places left in the mesh, three members asking at once.
    let (others, refused) = at_once(&mesh, &[1, 2, 3]).await;
    assert_eq!(others.len(), 2, "other members' sessions admitted");
    assert_eq!(refused, [BrokerErrorCode::MeshFull]);
}

async fn a_full_mesh_and_a_member_at_their_limit_refuse_with_their_codes(engine: Engine) {
    let server = TestServer::start_with(
        engine,
        Options {
            broker_max_peers: Some(2),
            broker_max_connections_per_member: Some(1),
            ..Options::default()
        },
    )
    .await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let refused = async |who: usize| match mesh
        .session(mesh.identity(who), mesh.presence(who, &[]))
        .await
    {
        Err(ClientError::Refused { code, .. }) => Some(code),
        Ok(_) => None,
        Err(other) => panic!("{other}"),
    };
    let (alice, alice_again) = connect_to_reconnect(&mesh, 0).await;

    // Alice's second session is one more than hers may be.
    assert_eq!(refused(0).await, Some(BrokerErrorCode::TooManyConnections));
    let bob = mesh.connect(1).await;
    // Carol would be the mesh's third.
    assert_eq!(refused(2).await, Some(BrokerErrorCode::MeshFull));
    // A reconnect of a connected session does not count against itself.
    let alice = {
        let newer = mesh
            .session(alice_again, mesh.presence(0, &[]))
            .await
            .unwrap();
        assert_eq!(closed_with(&alice).await, Some(BrokerErrorCode::Replaced));
        newer
    };
    // Once Bob leaves there is room for Carol.
    drop(bob);
    next(&alice, |e| matches!(e, Event::PeerLeft(_)).then_some(())).await;
    assert_eq!(refused(2).await, None);
}
