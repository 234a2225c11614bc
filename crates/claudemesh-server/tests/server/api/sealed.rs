//! A broker that cannot replay or relabel, and an idempotent resend: the
//! client chooses each message's id and seals it, with the kind, group,
//! sender and recipients, inside the body; the broker stores a message once
//! per id, and a recipient drops what the database says otherwise.

use super::support::{WAIT, next};
use claudemesh_api::broker::{
    BrokerErrorCode, ClientFrame, Hello, MessageKind, PeerStatus, Priority, SendRequest,
    ServerFrame,
};
use claudemesh_api::e2e::{self, KeyPair};
use claudemesh_client::{Client, Event, Outgoing, Received, Resolved, SessionIdentity, broker_url};
use claudemesh_server::clock::Clock;
use claudemesh_testkit::{Engine, Mesh, TestServer};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

on_both_engines!(
    a_resend_after_a_lost_sent_is_stored_and_delivered_once,
    a_message_id_of_the_wrong_shape_or_someone_elses_is_refused,
    a_waiting_message_cannot_be_replaced_by_a_send_under_its_id,
    a_row_copied_under_a_new_id_is_shown_once,
    a_direct_message_relabelled_as_a_broadcast_is_not_shown,
    a_message_from_an_older_client_still_opens,
);

async fn next_message(client: &Client) -> Received {
    next(client, |e| match e {
        Event::Message(m) => Some(m),
        _ => None,
    })
    .await
}

async fn next_rejection(client: &Client) -> (String, String) {
    next(client, |e| match e {
        Event::Rejected { id, reason } => Some((id, reason)),
        _ => None,
    })
    .await
}

/// Nothing but presence arrives for a moment: no message, no rejection.
async fn nothing_more(client: &Client) {
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match client.next_event().await {
                Some(event @ (Event::Message(_) | Event::Rejected { .. })) => return Some(event),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await;
    assert!(
        quiet.is_err() || quiet == Ok(None),
        "unexpected event {quiet:?}"
    );
}

/// An identity of member `who` with a given session secret: the same
/// session key across connections, as `launch` keeps it.
fn identity_with(server: &TestServer, mesh: &Mesh, who: usize, secret: &str) -> SessionIdentity {
    SessionIdentity::with_session(
        &mesh.id,
        mesh.members[who].key_pair(),
        KeyPair::from_secret_hex(secret).unwrap(),
        server.clock.now_ms() + 3_600_000,
    )
}

/// Bob's machine key: where a message waits while he has no session.
fn to_bob_offline(mesh: &Mesh) -> Resolved {
    Resolved {
        kind: MessageKind::Direct,
        group: None,
        keys: vec![mesh.members[1].key_pair().public_hex()],
        waits: true,
        sessions: 0,
    }
}

async fn count(server: &TestServer, sql: &str, id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    n
}

async fn stored(server: &TestServer, id: &str) -> (i64, i64) {
    (
        count(
            server,
            "SELECT COUNT(*) FROM broker_messages WHERE id = $1",
            id,
        )
        .await,
        count(
            server,
            "SELECT COUNT(*) FROM broker_deliveries WHERE message_id = $1",
            id,
        )
        .await,
    )
}

async fn a_resend_after_a_lost_sent_is_stored_and_delivered_once(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob = mesh.connect(1).await;
    let secret = KeyPair::generate().unwrap().secret_hex();
    let first = mesh
        .session(
            identity_with(&server, &mesh, 0, &secret),
            mesh.presence(0, &[]),
        )
        .await
        .unwrap();
    assert!(first.welcome().client_message_ids);
    let (peers, members) = first.peers().await.unwrap();
    let resolved =
        claudemesh_client::target::resolve("Bob", first.session_key(), &peers, &members).unwrap();
    let outgoing: Outgoing = first.seal(&resolved, "only once", Priority::Next).unwrap();
    let id = outgoing.id.clone().expect("a client-chosen id");

    // Sent with a `req` nobody waits for: its `sent` is lost, and the
    // connection drops.
    first
        .send_raw(serde_json::to_string(&outgoing.frame(9_999)).unwrap())
        .unwrap();
    let shown = next_message(&bob).await;
    assert_eq!(
        (shown.id.as_str(), shown.text.as_str()),
        (id.as_str(), "only once")
    );
    assert!(shown.sealed_at.is_some(), "a sealed header came with it");
    drop(first);

    // The same session key connects again and sends the same message, twice
    // at once and once more: each time `sent` for the one stored.
    let again = mesh
        .session(
            identity_with(&server, &mesh, 0, &secret),
            mesh.presence(0, &[]),
        )
        .await
        .unwrap();
    let (a, b) = tokio::join!(again.send_sealed(&outgoing), again.send_sealed(&outgoing));
    let c = again.send_sealed(&outgoing).await;
    // Bob's session and his machine key.
    let boxes = resolved.keys.len();
    for sent in [a, b, c] {
        let sent = sent.unwrap();
        assert_eq!(
            (sent.id.as_str(), sent.recipients as usize),
            (id.as_str(), boxes)
        );
    }
    assert_eq!(stored(&server, &id).await, (1, boxes as i64), "stored once");
    nothing_more(&bob).await;

    // A message never stored before, sent twice at once, is stored once.
    let twice = again.seal(&resolved, "raced", Priority::Next).unwrap();
    let (a, b) = tokio::join!(again.send_sealed(&twice), again.send_sealed(&twice));
    assert_eq!(a.unwrap().id, b.unwrap().id);
    let twice_id = twice.id.clone().unwrap();
    assert_eq!(stored(&server, &twice_id).await, (1, boxes as i64));
    assert_eq!(next_message(&bob).await.text, "raced");
    nothing_more(&bob).await;
    let status = again.message_status(&id).await.unwrap();
    assert_eq!(status.len(), boxes);
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn read(socket: &mut RawSocket) -> ServerFrame {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).unwrap(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => panic!("no frame: {other:?}"),
        }
    }
}

/// A session that speaks frames itself, past its welcome.
async fn raw_session(server: &TestServer, identity: &SessionIdentity, name: &str) -> RawSocket {
    let (mut socket, _) = tokio_tungstenite::connect_async(broker_url(&server.base_url))
        .await
        .unwrap();
    let ServerFrame::Challenge { challenge, .. } = read(&mut socket).await else {
        panic!("no challenge");
    };
    let session_key = identity.session.public_hex();
    let hello = Hello {
        version: 1,
        mesh_id: identity.mesh_id.clone(),
        member_key: identity.member.public_hex(),
        session_key: session_key.clone(),
        attestation: identity.attestation.clone(),
        display_name: name.into(),
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
    let frame = serde_json::to_string(&ClientFrame::Hello(hello)).unwrap();
    socket.send(Message::text(frame)).await.unwrap();
    let ServerFrame::Welcome(welcome) = read(&mut socket).await else {
        panic!("no welcome");
    };
    assert!(welcome.client_message_ids);
    socket
}

/// Sends a `send` and returns the broker's answer to it.
async fn ask(socket: &mut RawSocket, request: SendRequest) -> ServerFrame {
    let req = request.req;
    let frame = serde_json::to_string(&ClientFrame::Send(request)).unwrap();
    socket.send(Message::text(frame)).await.unwrap();
    loop {
        match read(socket).await {
            answer @ (ServerFrame::Sent { req: r, .. }
            | ServerFrame::Error { req: Some(r), .. })
                if r == req =>
            {
                return answer;
            }
            _ => {}
        }
    }
}

fn refused_code(answer: &ServerFrame) -> Option<BrokerErrorCode> {
    match answer {
        ServerFrame::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// A send as an older client makes it: the text sealed as it is, no id.
fn legacy_send(from: &KeyPair, to: &str, text: &str, req: u64) -> SendRequest {
    let (body, keys) = e2e::seal(from, &[to.to_owned()], text).unwrap();
    SendRequest {
        req,
        id: None,
        kind: MessageKind::Direct,
        group: None,
        priority: Priority::Next,
        body,
        keys,
    }
}

async fn a_message_id_of_the_wrong_shape_or_someone_elses_is_refused(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let bob_key = mesh.members[1].key_pair().public_hex();
    let sent = alice
        .send_sealed(
            &alice
                .seal(&to_bob_offline(&mesh), "mine", Priority::Next)
                .unwrap(),
        )
        .await
        .unwrap();

    let carol = mesh.identity(2);
    let mut socket = raw_session(&server, &carol, "Carol").await;
    for (req, id) in [
        (1, "msg_q4w7e2rt5yu3io6p".to_owned()),
        (2, format!("msg_{}", "AB".repeat(16))),
        (3, format!("msg_{}", "ab".repeat(17))),
        (4, String::new()),
    ] {
        let mut request = legacy_send(&carol.session, &bob_key, "x", req);
        request.id = Some(id);
        let answer = ask(&mut socket, request).await;
        assert_eq!(
            refused_code(&answer),
            Some(BrokerErrorCode::BadMessageId),
            "{answer:?}"
        );
    }
    // Alice's id is hers: Carol cannot send under it (nor add recipients
    // to Alice's message), and the connection goes on.
    let mut request = legacy_send(&carol.session, &bob_key, "squatting", 5);
    request.id = Some(sent.id.clone());
    assert_eq!(
        refused_code(&ask(&mut socket, request).await),
        Some(BrokerErrorCode::BadMessageId)
    );
    assert_eq!(stored(&server, &sent.id).await, (1, 1));
    let answer = ask(&mut socket, legacy_send(&carol.session, &bob_key, "old", 6)).await;
    assert!(
        matches!(&answer, ServerFrame::Sent { id, .. } if id.starts_with("msg_") && id.len() < 36),
        "without an id the broker picks one: {answer:?}"
    );
}

async fn a_row_copied_under_a_new_id_is_shown_once(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let sent = alice
        .send("Bob", "pay the invoice", Priority::Next)
        .await
        .unwrap();
    assert!(sent.waits, "Bob is offline: it waits in the database");
    let copy = format!("msg_{}", "c0".repeat(16));
    server.copy_broker_message(&sent.id, &copy).await;
    assert_eq!(stored(&server, &copy).await, (1, 1));

    let bob = mesh.connect(1).await;
    // Both come, in the order of their ids: the original is shown, the
    // copy dropped.
    let (mut shown, mut rejected) = (Vec::new(), Vec::new());
    while shown.len() + rejected.len() < 2 {
        match next(&bob, |e| {
            matches!(e, Event::Message(_) | Event::Rejected { .. }).then_some(e)
        })
        .await
        {
            Event::Message(m) => shown.push(m),
            Event::Rejected { id, reason } => rejected.push((id, reason)),
            _ => {}
        }
    }
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        (shown[0].id.as_str(), shown[0].text.as_str()),
        (sent.id.as_str(), "pay the invoice")
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, copy);
    assert!(rejected[0].1.contains("sealed id"), "{}", rejected[0].1);
    nothing_more(&bob).await;
    // The copy is acknowledged like any forgery, so it does not come again.
    drop(bob);
    let bob = mesh.connect(1).await;
    nothing_more(&bob).await;
}

async fn a_direct_message_relabelled_as_a_broadcast_is_not_shown(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.connect(0).await;
    let sent = alice
        .send("Bob", "just between us", Priority::Next)
        .await
        .unwrap();
    server
        .relabel_broker_message(&sent.id, "broadcast", None)
        .await;
    let relabelled = alice
        .send("Bob", "to the group", Priority::Next)
        .await
        .unwrap();
    server
        .relabel_broker_message(&relabelled.id, "group", Some("all"))
        .await;

    let bob = mesh.connect(1).await;
    let mut rejected = Vec::new();
    for _ in 0..2 {
        let (id, reason) = next_rejection(&bob).await;
        assert!(reason.contains("kind or group"), "{reason}");
        rejected.push(id);
    }
    rejected.sort();
    let mut expected = vec![sent.id, relabelled.id];
    expected.sort();
    assert_eq!(rejected, expected);
    nothing_more(&bob).await;
}

async fn a_message_from_an_older_client_still_opens(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob = mesh.connect(1).await;
    let alice = mesh.identity(0);
    let mut socket = raw_session(&server, &alice, "Alice").await;
    let answer = ask(
        &mut socket,
        legacy_send(&alice.session, bob.session_key(), "from an older client", 1),
    )
    .await;
    let ServerFrame::Sent { id, .. } = answer else {
        panic!("not sent: {answer:?}");
    };
    let shown = next_message(&bob).await;
    assert_eq!(
        (shown.id.as_str(), shown.text.as_str(), shown.sealed_at),
        (id.as_str(), "from an older client", None)
    );
}

/// Bob is busy, so Alice's message waits for him; Carol, who knows its id
/// (she could have got the same message), sends Bob one of her own under it,
/// marked `now`. It is refused, and reaches Bob neither at once (a message
/// is pushed before its commit only when its id is new) nor in place of
/// Alice's, which he reads once he is idle.
async fn a_waiting_message_cannot_be_replaced_by_a_send_under_its_id(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    bob.set_status(PeerStatus::Working).unwrap();
    next(&alice, |e| matches!(e, Event::PeerUpdated(_)).then_some(())).await;
    let sent = alice
        .send("Bob", "the real one", Priority::Next)
        .await
        .unwrap();

    let carol = mesh.identity(2);
    let mut socket = raw_session(&server, &carol, "Carol").await;
    let mut request = legacy_send(&carol.session, bob.session_key(), "an impostor", 1);
    request.id = Some(sent.id.clone());
    request.priority = Priority::Now;
    assert_eq!(
        refused_code(&ask(&mut socket, request).await),
        Some(BrokerErrorCode::BadMessageId)
    );
    let quiet = tokio::time::timeout(Duration::from_millis(400), next_message(&bob)).await;
    assert!(quiet.is_err(), "a busy Bob got {quiet:?}");

    bob.set_status(PeerStatus::Idle).unwrap();
    let got = next_message(&bob).await;
    assert_eq!(
        (
            got.id.as_str(),
            got.text.as_str(),
            got.from.display_name.as_str()
        ),
        (sent.id.as_str(), "the real one", "Alice")
    );
}
