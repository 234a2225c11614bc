//! Governance of a mesh: the member list, adding by email, roles, rename,
//! archive, unarchive and delete, with every refusal and its audit event.

use super::support::send;
use claudemesh_api::broker::{BrokerErrorCode, Priority};
use claudemesh_client::{ClientError, Event};
use claudemesh_testkit::{Engine, TestServer, TestUser};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    the_member_list_shows_roles_presence_keys_and_pending_invites,
    admins_add_members_by_email_and_others_cannot,
    admins_change_roles_but_never_demote_the_last_admin,
    renaming_checks_the_name_and_the_role,
    an_archived_mesh_takes_no_sessions_and_no_members,
    deleting_a_mesh_leaves_no_rows_and_frees_its_slug,
);

async fn get(server: &TestServer, user: &TestUser, path: &str) -> (u16, Value) {
    send(user.browser.get(server.url(path))).await
}

async fn patch(server: &TestServer, user: &TestUser, path: &str, body: Value) -> (u16, Value) {
    send(user.browser.patch(server.url(path)).json(&body)).await
}

async fn post(server: &TestServer, user: &TestUser, path: &str, body: Value) -> (u16, Value) {
    send(user.browser.post(server.url(path)).json(&body)).await
}

fn error(answer: &(u16, Value)) -> (u16, Option<&str>) {
    (answer.0, answer.1["error"].as_str())
}

async fn rows(server: &TestServer, sql: &str, mesh_id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(mesh_id)
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    n
}

async fn the_member_list_shows_roles_presence_keys_and_pending_invites(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let bob = &mesh.member("Bob").user;
    let _alice_session = mesh.connect(0).await;
    let invite = mesh
        .invite(json!({ "email": "dave@example.com", "role": "admin" }))
        .await;

    // Any member sees the list.
    let (status, list) = get(&server, bob, "/api/my/meshes/team/members").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["mesh"], "team");
    let members = list["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let alice = members
        .iter()
        .find(|m| m["display_name"] == "Alice")
        .unwrap();
    assert_eq!(alice["role"], "admin");
    assert_eq!(alice["sessions_online"], 1);
    assert!(alice["last_seen_at"].is_string(), "{alice}");
    assert_eq!(alice["public_keys"].as_array().unwrap().len(), 1);
    assert_eq!(alice["you"], false);
    let carol = members
        .iter()
        .find(|m| m["display_name"] == "Carol")
        .unwrap();
    assert_eq!(
        (
            &carol["role"],
            &carol["sessions_online"],
            &carol["last_seen_at"]
        ),
        (&json!("member"), &json!(0), &Value::Null)
    );
    let me = members.iter().find(|m| m["display_name"] == "Bob").unwrap();
    assert_eq!(me["you"], true);
    let pending = list["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{list}");
    assert_eq!(pending[0]["id"], invite["id"]);
    assert_eq!(pending[0]["email"], "dave@example.com");
    assert_eq!(pending[0]["role"], "admin");
    assert_eq!(pending[0]["invited_by"], "Alice");
    assert_eq!(pending[0]["expires_at"], invite["expires_at"]);
    // The code of an invite is for admins: it is not in the list.
    assert!(pending[0].get("code").is_none());

    // A mesh the caller is not in answers like one that does not exist.
    let stranger = server.register("Eve").await;
    let answer = get(&server, &stranger, "/api/my/meshes/team/members").await;
    assert_eq!(error(&answer), (404, Some("not_found")));
}

async fn admins_add_members_by_email_and_others_cannot(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = (&mesh.member("Alice").user, &mesh.member("Bob").user);

    let answer = post(
        &server,
        bob,
        "/api/my/meshes/team/members",
        json!({ "email": "carol@example.com" }),
    )
    .await;
    assert_eq!(error(&answer), (403, Some("forbidden")));
    for bad in [
        json!({ "email": "not an address" }),
        json!({ "email": "" }),
        json!({ "email": "carol@example.com", "role": "owner" }),
    ] {
        let answer = post(&server, alice, "/api/my/meshes/team/members", bad.clone()).await;
        assert_eq!(answer.0, 400, "{bad}: {}", answer.1);
    }
    let (_, list) = get(&server, alice, "/api/my/meshes/team/members").await;
    assert_eq!(list["pending"], json!([]), "nothing was made by bad input");

    let (status, created) = post(
        &server,
        alice,
        "/api/my/meshes/team/members",
        json!({ "email": "carol@example.com", "role": "admin" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["email"], "carol@example.com");
    assert_eq!(created["role"], "admin");
    // The same mail path as an invite: no SMTP here, so the outbox, said so.
    assert_eq!(
        (&created["mail"], &created["emailed"]),
        (&json!("outbox"), &json!(false))
    );
    assert!(created["url"].as_str().unwrap().contains("/i/"));
    let (_, list) = get(&server, alice, "/api/my/meshes/team/members").await;
    assert_eq!(list["pending"][0]["email"], "carol@example.com");
    // The same path as an invite: the same audit event.
    assert!(server.audited("mesh.invite.created").await);
}

async fn admins_change_roles_but_never_demote_the_last_admin(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = (&mesh.member("Alice").user, &mesh.member("Bob").user);
    let alice_id = &mesh.member("Alice").member_id;
    let bob_id = &mesh.member("Bob").member_id;
    let path = |id: &str| format!("/api/my/meshes/team/members/{id}");

    // A member cannot change roles; the last admin cannot be demoted.
    let answer = patch(&server, bob, &path(bob_id), json!({ "role": "admin" })).await;
    assert_eq!(error(&answer), (403, Some("forbidden")));
    let answer = patch(&server, alice, &path(alice_id), json!({ "role": "member" })).await;
    assert_eq!(error(&answer), (409, Some("last_admin")));
    // Bad input changes nothing.
    let answer = patch(
        &server,
        alice,
        &path("mem_nobody"),
        json!({ "role": "admin" }),
    )
    .await;
    assert_eq!(error(&answer), (404, Some("not_found")));
    let answer = patch(&server, alice, &path(bob_id), json!({ "role": "owner" })).await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    let stranger = server.register("Eve").await;
    let answer = patch(
        &server,
        &stranger,
        &path(bob_id),
        json!({ "role": "admin" }),
    )
    .await;
    assert_eq!(error(&answer), (404, Some("not_found")));
    assert!(!server.audited("mesh.member.role_changed").await);

    // Bob becomes admin; then Alice can step down, and is then a member.
    let answer = patch(&server, alice, &path(bob_id), json!({ "role": "admin" })).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let answer = patch(&server, alice, &path(alice_id), json!({ "role": "member" })).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let (_, list) = get(&server, bob, "/api/my/meshes/team/members").await;
    let role = |name: &str| {
        list["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["display_name"] == name)
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(
        (role("Alice"), role("Bob")),
        (json!("member"), json!("admin"))
    );
    // Bob is now the only admin: he can neither be demoted nor leave.
    let answer = patch(&server, bob, &path(bob_id), json!({ "role": "member" })).await;
    assert_eq!(error(&answer), (409, Some("last_admin")));
    assert_eq!(bob.remove_member("team", "me").await.0, 409);
    // Alice, a member now, can no longer change roles.
    let answer = patch(&server, alice, &path(bob_id), json!({ "role": "member" })).await;
    assert_eq!(error(&answer), (403, Some("forbidden")));

    let events = server.audit_events().await;
    let changes: Vec<&(String, Option<String>, String)> = events
        .iter()
        .filter(|(event, _, _)| event == "mesh.member.role_changed")
        .collect();
    assert_eq!(changes.len(), 2, "{events:?}");
    // The promotion of Bob: actor, target, mesh (and time, as every event).
    let (_, actor, detail) = changes
        .iter()
        .find(|(_, _, detail)| detail.contains(bob_id.as_str()))
        .unwrap();
    assert_eq!(actor.as_deref(), Some(alice.user.id.as_str()));
    let detail: Value = serde_json::from_str(detail).unwrap();
    assert_eq!(detail["mesh_id"], mesh.id);
    assert_eq!(detail["member_id"], bob_id.as_str());
    assert_eq!(
        (&detail["from"], &detail["to"]),
        (&json!("member"), &json!("admin"))
    );
}

async fn renaming_checks_the_name_and_the_role(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = (&mesh.member("Alice").user, &mesh.member("Bob").user);
    for bad in ["", "   ", &"x".repeat(200)] {
        let answer = patch(
            &server,
            alice,
            "/api/my/meshes/team",
            json!({ "name": bad }),
        )
        .await;
        assert_eq!(error(&answer), (400, Some("invalid_request")), "{bad:?}");
    }
    let answer = patch(
        &server,
        bob,
        "/api/my/meshes/team",
        json!({ "name": "Bob's" }),
    )
    .await;
    assert_eq!(error(&answer), (403, Some("forbidden")));
    assert_eq!(
        get(&server, alice, "/api/my/meshes/team").await.1["name"],
        "Team"
    );

    let (status, renamed) = patch(
        &server,
        alice,
        "/api/my/meshes/team",
        json!({ "name": "Platform team" }),
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(
        (&renamed["name"], &renamed["slug"]),
        (&json!("Platform team"), &json!("team"))
    );
    let (_, list) = get(&server, bob, "/api/my/meshes").await;
    assert_eq!(list["meshes"][0]["name"], "Platform team");
    assert!(server.audited("mesh.renamed").await);
}

async fn an_archived_mesh_takes_no_sessions_and_no_members(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let (alice, bob) = (&mesh.member("Alice").user, &mesh.member("Bob").user);
    let link = mesh.invite(json!({})).await;
    let bob_session = mesh.connect(1).await;

    let answer = post(&server, bob, "/api/my/meshes/team/archive", json!({})).await;
    assert_eq!(error(&answer), (403, Some("forbidden")));

    let (status, archived) = post(&server, alice, "/api/my/meshes/team/archive", json!({})).await;
    assert_eq!(status, 200, "{archived}");
    assert!(archived["archived_at"].is_string());
    // Live sessions close within a second; new ones are refused.
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match bob_session.next_event().await {
                Some(Event::Closed { code, .. }) => return code,
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await
    .expect("closed within a second");
    assert_eq!(closed, Some(BrokerErrorCode::MeshArchived));
    let refused = mesh.session(mesh.identity(1), mesh.presence(1, &[])).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Refused {
                code: BrokerErrorCode::MeshArchived,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    // Archiving again is fine and changes nothing.
    let (status, again) = post(&server, alice, "/api/my/meshes/team/archive", json!({})).await;
    assert_eq!(
        (status, &again["archived_at"]),
        (200, &archived["archived_at"])
    );
    // Invites stop working, old and new.
    let carol = server.register("Carol").await;
    let code = link["code"].as_str().unwrap();
    let answer = post(
        &server,
        &carol,
        &format!("/api/invites/{code}/accept"),
        json!({ "public_key": "a".repeat(64) }),
    )
    .await;
    assert_eq!(error(&answer), (409, Some("mesh_archived")));
    let answer = post(&server, alice, "/api/my/meshes/team/invites", json!({})).await;
    assert_eq!(error(&answer), (409, Some("mesh_archived")));
    // Members still see it, as archived.
    let (_, list) = get(&server, bob, "/api/my/meshes").await;
    assert_eq!(list["meshes"][0]["archived_at"], archived["archived_at"]);

    // Unarchived, it is live again.
    let (status, live) = post(&server, alice, "/api/my/meshes/team/unarchive", json!({})).await;
    assert_eq!(status, 200, "{live}");
    assert!(live.get("archived_at").is_none(), "{live}");
    let bob_again = mesh.connect(1).await;
    assert!(bob_again.peers().await.is_ok());
    let events: Vec<String> = server
        .audit_events()
        .await
        .into_iter()
        .map(|(event, _, _)| event)
        .collect();
    let count = |name: &str| events.iter().filter(|e| *e == name).count();
    assert_eq!((count("mesh.archived"), count("mesh.unarchived")), (1, 1));
}

async fn deleting_a_mesh_leaves_no_rows_and_frees_its_slug(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let (alice, bob) = (&mesh.member("Alice").user, &mesh.member("Bob").user);
    mesh.invite(json!({ "email": "dave@example.com" })).await;
    let alice_session = mesh.connect(0).await;
    let bob_session = mesh.connect(1).await;
    // A message delivered, one waiting for Carol, a grant.
    alice_session
        .send("Bob", "hello", Priority::Next)
        .await
        .unwrap();
    alice_session
        .send("Carol", "later", Priority::Next)
        .await
        .unwrap();
    let carol_id = mesh.member("Carol").member_id.clone();
    let answer = patch(
        &server,
        bob,
        &format!("/api/my/meshes/team/grants/{carol_id}"),
        json!({ "revoke": ["dm"] }),
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);

    let tables = [
        "SELECT COUNT(*) FROM meshes WHERE id = $1",
        "SELECT COUNT(*) FROM mesh_members WHERE mesh_id = $1",
        "SELECT COUNT(*) FROM mesh_member_keys WHERE member_id IN (SELECT id FROM mesh_members WHERE mesh_id = $1)",
        "SELECT COUNT(*) FROM mesh_invites WHERE mesh_id = $1",
        "SELECT COUNT(*) FROM mesh_grants WHERE mesh_id = $1",
        "SELECT COUNT(*) FROM broker_messages WHERE mesh_id = $1",
        "SELECT COUNT(*) FROM broker_deliveries WHERE message_id IN (SELECT id FROM broker_messages WHERE mesh_id = $1)",
        "SELECT COUNT(*) FROM broker_sessions WHERE mesh_id = $1",
    ];
    // The writer batches: wait until the messages are stored.
    for _ in 0..50 {
        if rows(&server, tables[5], &mesh.id).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for sql in tables {
        assert!(rows(&server, sql, &mesh.id).await > 0, "rows before: {sql}");
    }

    let answer = send(bob.browser.delete(server.url("/api/my/meshes/team"))).await;
    assert_eq!(error(&answer), (403, Some("forbidden")));
    let (status, deleted) = send(alice.browser.delete(server.url("/api/my/meshes/team"))).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({ "id": mesh.id, "slug": "team", "deleted": true })
    );
    for sql in tables {
        assert_eq!(rows(&server, sql, &mesh.id).await, 0, "rows after: {sql}");
    }
    let closed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match bob_session.next_event().await {
                Some(Event::Closed { .. }) | None => return,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the live session closes");
    assert_eq!(get(&server, alice, "/api/my/meshes/team").await.0, 404);
    assert!(server.audited("mesh.deleted").await);

    // The slug is free again.
    let (status, again) = post(
        &server,
        bob,
        "/api/my/meshes",
        json!({ "name": "Team", "public_key": "b".repeat(64) }),
    )
    .await;
    assert_eq!((status, &again["slug"]), (201, &json!("team")), "{again}");
}
