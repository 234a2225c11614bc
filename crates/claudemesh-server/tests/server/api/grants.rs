//! Per-peer grants enforced by the broker: direct messages refused, group
//! and broadcast copies skipped, presence hidden, a change applied to live
//! sessions and to messages still waiting, bad input refused; and two
//! instances on one PostgreSQL database.

use super::support::send;
use claudemesh_api::broker::{BrokerErrorCode, PeerStatus, Priority, SessionRight};
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{Client, ClientError, Event, SessionIdentity};
use claudemesh_server::clock::Clock;
use claudemesh_testkit::{Engine, Mesh, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    a_direct_message_without_dm_is_refused_and_not_stored,
    group_and_broadcast_copies_skip_members_without_group,
    without_presence_a_peer_sees_a_member_but_not_their_status,
    a_waiting_message_from_a_newly_blocked_sender_is_not_delivered,
    grants_lists_both_directions_and_refuses_bad_input,
    the_mesh_default_applies_to_new_members,
    a_session_limited_to_dm_cannot_broadcast_frame_by_frame,
    rights_cannot_be_widened_after_the_member_key_signed_them,
);

const WAIT: Duration = Duration::from_secs(10);

async fn grant(mesh: &Mesh, who: &str, peer: &str, body: Value) -> (u16, Value) {
    let user = &mesh.member(who).user;
    let peer_id = &mesh.member(peer).member_id;
    send(
        user.browser
            .patch(user.url(&format!("/api/my/meshes/{}/grants/{peer_id}", mesh.slug)))
            .json(&body),
    )
    .await
}

async fn text_from(client: &Client) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::Message(m)) = client.next_event().await {
                return m.text;
            }
        }
    })
    .await
    .expect("a message arrives")
}

/// No message arrives for a moment.
async fn no_message(client: &Client) {
    let quiet = tokio::time::timeout(Duration::from_millis(500), async {
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

fn not_permitted(result: Result<claudemesh_client::Sent, ClientError>) -> String {
    match result {
        Err(ClientError::Refused {
            code: BrokerErrorCode::NotPermitted,
            message,
            ..
        }) => message,
        other => panic!("expected not_permitted, got {other:?}"),
    }
}

async fn stored_messages(server: &TestServer, mesh: &Mesh) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM broker_messages WHERE mesh_id = $1")
        .bind(&mesh.id)
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    n
}

async fn a_direct_message_without_dm_is_refused_and_not_stored(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    let carol = mesh.connect(2).await;
    alice.send("Bob", "before", Priority::Next).await.unwrap();
    assert_eq!(text_from(&bob).await, "before");

    // Bob takes dm from Alice while both are connected: it applies at once.
    let (status, body) = grant(&mesh, "Bob", "Alice", json!({ "revoke": ["dm"] })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caps"], json!(["group", "presence"]));
    let stored = stored_messages(&server, &mesh).await;
    let revoked = not_permitted(alice.send("Bob", "after", Priority::Next).await);
    // Blocked says exactly the same as not granted.
    grant(
        &mesh,
        "Bob",
        "Alice",
        json!({ "revoke": ["dm", "group", "presence"] }),
    )
    .await;
    let blocked = not_permitted(alice.send("Bob", "blocked", Priority::Next).await);
    assert_eq!(revoked, blocked);
    no_message(&bob).await;
    assert_eq!(
        stored_messages(&server, &mesh).await,
        stored,
        "nothing stored"
    );
    // Others are not affected, nor is the other direction.
    alice
        .send("Carol", "to carol", Priority::Next)
        .await
        .unwrap();
    assert_eq!(text_from(&carol).await, "to carol");
    bob.send("Alice", "bob may still write", Priority::Next)
        .await
        .unwrap();
    assert_eq!(text_from(&alice).await, "bob may still write");
    // Unblocked, it works again.
    grant(
        &mesh,
        "Bob",
        "Alice",
        json!({ "grant": ["dm", "group", "presence"] }),
    )
    .await;
    alice.send("Bob", "again", Priority::Next).await.unwrap();
    assert_eq!(text_from(&bob).await, "again");
    assert!(server.audited("mesh.grant.changed").await);
}

async fn group_and_broadcast_copies_skip_members_without_group(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect_in(0, &["ops"]).await;
    let bob = mesh.connect_in(1, &["ops"]).await;
    let carol = mesh.connect_in(2, &["ops"]).await;
    grant(&mesh, "Carol", "Alice", json!({ "revoke": ["group"] })).await;

    let sent = alice
        .send("*", "to everyone", Priority::Next)
        .await
        .unwrap();
    assert_eq!(sent.recipients, 1, "only Bob is reached");
    assert_eq!(text_from(&bob).await, "to everyone");
    let sent = alice.send("@ops", "to ops", Priority::Next).await.unwrap();
    assert_eq!(sent.recipients, 1);
    assert_eq!(text_from(&bob).await, "to ops");
    no_message(&carol).await;
    // Carol still takes direct messages from Alice, and Bob's broadcasts.
    alice.send("Carol", "direct", Priority::Next).await.unwrap();
    assert_eq!(text_from(&carol).await, "direct");
    bob.send("*", "from bob", Priority::Next).await.unwrap();
    assert_eq!(text_from(&carol).await, "from bob");
    // No copy for Carol was stored.
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM broker_deliveries d JOIN broker_messages m ON m.id = d.message_id \
         WHERE m.sender_member_id = $1 AND d.recipient_member_id = $2 AND m.kind <> 'direct'",
    )
    .bind(&mesh.member("Alice").member_id)
    .bind(&mesh.member("Carol").member_id)
    .fetch_one(server.state().pool())
    .await
    .unwrap();
    assert_eq!(n, 0);
    let drops = server.state().broker.drops_by_capability();
    assert!(
        drops
            .iter()
            .any(|(cap, n)| cap.as_str() == "group" && *n == 2),
        "{drops:?}"
    );
}

async fn without_presence_a_peer_sees_a_member_but_not_their_status(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let bob = mesh.connect(1).await;
    let carol = mesh.connect(2).await;
    grant(&mesh, "Bob", "Alice", json!({ "revoke": ["presence"] })).await;
    bob.set_summary("reviewing the auth change").unwrap();
    bob.set_status(PeerStatus::Working).unwrap();

    // Carol sees it all (as an update, then in the list).
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Event::PeerUpdated(p)) = carol.next_event().await
                && p.status == PeerStatus::Working
            {
                assert_eq!(p.summary, "reviewing the auth change");
                return;
            }
        }
    })
    .await
    .expect("Carol sees Bob's status");
    let (peers, _) = carol.peers().await.unwrap();
    let seen = peers.iter().find(|p| p.display_name == "Bob").unwrap();
    assert_eq!(
        (seen.status, seen.summary.as_str()),
        (PeerStatus::Working, "reviewing the auth change")
    );

    // Alice sees Bob is there, without status or summary, in updates too.
    let (peers, members) = alice.peers().await.unwrap();
    let seen = peers
        .iter()
        .find(|p| p.display_name == "Bob")
        .expect("Bob is listed");
    assert_eq!((seen.status, seen.summary.as_str()), (PeerStatus::Idle, ""));
    assert!(members.iter().any(|m| m.display_name == "Bob"));
    let updates = tokio::time::timeout(Duration::from_millis(500), async {
        let mut seen = Vec::new();
        while let Some(event) = alice.next_event().await {
            if let Event::PeerUpdated(p) = event {
                seen.push((p.status, p.summary));
            }
        }
        seen
    })
    .await
    .unwrap_or_default();
    assert!(
        !updates.iter().any(|(_, summary)| !summary.is_empty()),
        "{updates:?}"
    );
}

async fn a_waiting_message_from_a_newly_blocked_sender_is_not_delivered(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let alice = mesh.connect(0).await;
    let carol = mesh.connect(2).await;
    // Bob is offline: both messages wait for him.
    alice
        .send("Bob", "from alice", Priority::Next)
        .await
        .unwrap();
    carol
        .send("Bob", "from carol", Priority::Next)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = grant(
        &mesh,
        "Bob",
        "Alice",
        json!({ "revoke": ["dm", "group", "presence"] }),
    )
    .await;
    assert_eq!(status, 200);
    let bob = mesh.connect(1).await;
    assert_eq!(text_from(&bob).await, "from carol");
    no_message(&bob).await;
}

async fn grants_lists_both_directions_and_refuses_bad_input(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob = &mesh.member("Bob").user;
    grant(&mesh, "Alice", "Bob", json!({ "revoke": ["presence"] })).await;
    let (status, list) = send(bob.browser.get(bob.url("/api/my/meshes/team/grants"))).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["you_allow"][0]["display_name"], "Alice");
    assert_eq!(
        list["you_allow"][0]["caps"],
        json!(["dm", "group", "presence"])
    );
    assert_eq!(list["allows_you"][0]["caps"], json!(["dm", "group"]));
    assert_eq!(list["mesh_default"], json!(["dm", "group", "presence"]));

    let bob_id = mesh.member("Bob").member_id.clone();
    for (body, code) in [
        (json!({ "grant": ["teleport"] }), 400),
        (json!({ "grant": "dm" }), 400),
        (json!({ "revoke": ["dm"], "extra": 1 }), 400),
    ] {
        let (status, answer) = grant(&mesh, "Alice", "Bob", body.clone()).await;
        assert_eq!(status, code, "{body}: {answer}");
    }
    // Oneself, an unknown member, a mesh one is not in.
    let path = |id: &str| bob.url(&format!("/api/my/meshes/team/grants/{id}"));
    let (status, _) = send(
        bob.browser
            .patch(path(&bob_id))
            .json(&json!({ "revoke": ["dm"] })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        bob.browser
            .patch(path("mem_nobody"))
            .json(&json!({ "revoke": ["dm"] })),
    )
    .await;
    assert_eq!(status, 404);
    let eve = server.register("Eve").await;
    let (status, _) = send(
        eve.browser
            .patch(eve.url(&format!("/api/my/meshes/team/grants/{bob_id}")))
            .json(&json!({ "revoke": ["dm"] })),
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = send(bob.browser.get(bob.url("/api/my/meshes/team/grants"))).await;
    assert_eq!(
        list["allows_you"][0]["caps"],
        json!(["dm", "group"]),
        "unchanged"
    );
}

async fn the_mesh_default_applies_to_new_members(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mut mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = (
        mesh.member("Alice").user.clone(),
        mesh.member("Bob").user.clone(),
    );
    let (status, _) = send(
        bob.browser
            .put(bob.url("/api/my/meshes/team/default-grants"))
            .json(&json!({ "caps": ["group"] })),
    )
    .await;
    assert_eq!(status, 403);
    // `approve` is given to one member at a time, never as a default.
    let (status, body) = send(
        alice
            .browser
            .put(alice.url("/api/my/meshes/team/default-grants"))
            .json(&json!({ "caps": ["dm", "approve"] })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("one member at a time"),
        "{body}"
    );
    let (status, body) = send(
        alice
            .browser
            .put(alice.url("/api/my/meshes/team/default-grants"))
            .json(&json!({ "caps": ["group", "presence"] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let carol = server.register("Carol").await;
    mesh.join(&carol, claudemesh_api::wire::MeshRole::Member)
        .await;
    let alice_session = mesh.connect(0).await;
    let _carol_session = mesh.connect(2).await;
    // Carol joined with the new default: no direct messages until she grants them.
    not_permitted(alice_session.send("Carol", "hi", Priority::Next).await);
    // Bob, already a member, keeps his.
    let _bob_session = mesh.connect(1).await;
    alice_session
        .send("Bob", "hi", Priority::Next)
        .await
        .unwrap();
    grant(&mesh, "Carol", "Alice", json!({ "grant": ["dm"] })).await;
    alice_session
        .send("Carol", "hi", Priority::Next)
        .await
        .unwrap();
}

/// A block and an archive made through one instance reach sessions on
/// another within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_and_an_archive_reach_another_instance_within_a_second() {
    let server = TestServer::start(Engine::Postgres).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let second = server.second_instance().await;
    let second_url = second.base_url.clone();

    // Alice sends from the second instance; Bob blocks her through the first.
    let alice = Client::connect(&second_url, mesh.identity(0), mesh.presence(0, &[]))
        .await
        .unwrap();
    let bob = mesh.connect(1).await;
    alice.send("Bob", "before", Priority::Next).await.unwrap();
    assert_eq!(text_from(&bob).await, "before");
    let (status, _) = grant(
        &mesh,
        "Bob",
        "Alice",
        json!({ "revoke": ["dm", "group", "presence"] }),
    )
    .await;
    assert_eq!(status, 200);
    let refused = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match alice.send("Bob", "after", Priority::Next).await {
                Err(ClientError::Refused {
                    code: BrokerErrorCode::NotPermitted,
                    ..
                }) => return,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the block reached the other instance within a second"
    );

    // Archiving through the first instance closes Carol's session on the second.
    let carol = Client::connect(&second_url, mesh.identity(2), mesh.presence(2, &[]))
        .await
        .unwrap();
    let admin = &mesh.admin().user;
    let (status, _) = send(
        admin
            .browser
            .post(admin.url("/api/my/meshes/team/archive"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match carol.next_event().await {
                Some(Event::Closed { code, .. }) => return code,
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .expect("closed within a second");
    assert_eq!(closed, Some(BrokerErrorCode::MeshArchived));
    second.stop().await;
}

/// A session of member `who` whose attestation carries `rights`.
fn limited(
    server: &TestServer,
    mesh: &Mesh,
    who: usize,
    rights: &[SessionRight],
) -> SessionIdentity {
    SessionIdentity::limited(
        &mesh.id,
        mesh.members[who].key_pair(),
        KeyPair::generate().unwrap(),
        server.clock.now_ms() + 3_600_000,
        Some(rights.to_vec()),
    )
}

async fn a_session_limited_to_dm_cannot_broadcast_frame_by_frame(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let bob = mesh.connect_in(1, &["ops"]).await;
    let alice = mesh
        .session(
            limited(
                &server,
                &mesh,
                0,
                &[SessionRight::SendDm, SessionRight::Presence],
            ),
            mesh.presence(0, &["ops"]),
        )
        .await
        .expect("a limited session connects");

    // Direct messages go, and Bob verifies the limited attestation.
    alice
        .send("Bob", "direct is fine", Priority::Next)
        .await
        .unwrap();
    assert_eq!(text_from(&bob).await, "direct is fine");
    // Broadcast and group are refused, every time, and the session stays.
    for target in ["*", "@ops", "*"] {
        let message = not_permitted(alice.send(target, "to all", Priority::Next).await);
        assert!(message.contains("This session may not"), "{message}");
    }
    no_message(&bob).await;
    // presence is granted: the status goes through; set_summary is not.
    alice.set_status(PeerStatus::Working).unwrap();
    alice.set_summary("should not show").unwrap();
    alice
        .send("Bob", "still here", Priority::Next)
        .await
        .unwrap();
    assert_eq!(text_from(&bob).await, "still here");
    let (peers, _) = bob.peers().await.unwrap();
    let seen = peers.iter().find(|p| p.display_name == "Alice").unwrap();
    assert_eq!(
        (seen.status, seen.summary.as_str()),
        (PeerStatus::Working, "")
    );

    // A session without the field (an older client) keeps every right.
    let full = mesh.connect(0).await;
    let sent = full.send("*", "broadcast", Priority::Next).await.unwrap();
    assert!(sent.recipients >= 1);
    assert_eq!(text_from(&bob).await, "broadcast");
}

async fn rights_cannot_be_widened_after_the_member_key_signed_them(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    // Dropping the rights from a limited attestation breaks its signature.
    let mut widened = limited(&server, &mesh, 0, &[SessionRight::SendDm]);
    widened.attestation.rights = None;
    let refused = mesh.session(widened, mesh.presence(0, &[])).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                code: BrokerErrorCode::BadAttestation,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    let mut widened = limited(&server, &mesh, 0, &[SessionRight::SendDm]);
    widened.attestation.rights = Some(vec![SessionRight::SendDm, SessionRight::Broadcast]);
    assert!(mesh.session(widened, mesh.presence(0, &[])).await.is_err());
}
