//! Meshes, members, invites and invite mail.

use super::support::{login, send};
use claudemesh_api::wire::MeshRole;
use claudemesh_testkit::{Engine, MeshOptions, Options, SmtpSink, TestServer, TestUser};
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    creating_a_mesh_makes_the_creator_its_admin,
    a_taken_slug_answers_409_with_a_free_suggestion,
    bad_input_never_leaves_an_orphan_mesh,
    accounts_only_see_their_own_meshes,
    only_admins_manage_invites,
    an_invite_adds_a_member_once_and_then_is_used_up,
    expired_and_revoked_invites_say_so,
    twenty_people_accepting_at_once_never_exceed_max_uses,
    a_second_machine_registers_its_own_key,
    an_emailed_invite_arrives_in_the_inviters_language,
    a_refusing_mail_server_does_not_lose_the_invite,
    without_smtp_mail_lands_in_the_outbox,
    members_leave_and_admins_remove_them,
    the_only_admin_cannot_go,
    two_admins_removing_each_other_leave_one,
    the_invites_of_a_removed_admin_stop_working,
);

/// A random ed25519-sized public key in hex, as the CLI would send.
fn public_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    data_encoding::HEXLOWER.encode(&bytes)
}

async fn create_mesh(server: &TestServer, user: &TestUser, body: Value) -> (u16, Value) {
    send(user.browser.post(server.url("/api/my/meshes")).json(&body)).await
}

async fn invite(server: &TestServer, user: &TestUser, slug: &str, body: Value) -> (u16, Value) {
    send(
        user.browser
            .post(server.url(&format!("/api/my/meshes/{slug}/invites")))
            .json(&body),
    )
    .await
}

async fn accept(server: &TestServer, user: &TestUser, code: &str) -> (u16, Value) {
    let path = format!("/api/invites/{code}/accept");
    send(
        user.browser
            .post(server.url(&path))
            .json(&json!({ "public_key": public_key() })),
    )
    .await
}

async fn detail(server: &TestServer, user: &TestUser, slug: &str) -> (u16, Value) {
    send(
        user.browser
            .get(server.url(&format!("/api/my/meshes/{slug}"))),
    )
    .await
}

async fn creating_a_mesh_makes_the_creator_its_admin(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    // Through a CLI token, as `claudemesh create` does.
    let token = login(&server, &alice).await;
    let key = public_key();
    let (status, mesh) = send(
        server
            .anonymous()
            .post(server.url("/api/my/meshes"))
            .bearer_auth(&token)
            .json(&json!({ "name": "Platform team", "public_key": key })),
    )
    .await;
    assert_eq!(status, 201, "{mesh}");
    assert_eq!(mesh["slug"], "platform-team");
    assert_eq!(mesh["role"], "admin");
    assert_eq!(mesh["member_count"], 1);
    assert_eq!(mesh["display_name"], "Alice");

    let (_, list) = send(
        server
            .anonymous()
            .get(server.url("/api/my/meshes"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(list["meshes"].as_array().unwrap().len(), 1);
    assert_eq!(list["meshes"][0]["slug"], "platform-team");

    let (status, detail) = detail(&server, &alice, "platform-team").await;
    assert_eq!(status, 200);
    assert_eq!(detail["members"][0]["public_keys"], json!([key]));
    assert_eq!(detail["members"][0]["you"], true);

    let (status, custom) = create_mesh(&server, &alice, json!({ "name": "Other", "slug": "my-slug", "public_key": public_key(), "display_name": "Al" })).await;
    assert_eq!(
        (
            status,
            custom["slug"].as_str(),
            custom["display_name"].as_str()
        ),
        (201, Some("my-slug"), Some("Al"))
    );
}

async fn a_taken_slug_answers_409_with_a_free_suggestion(engine: Engine) {
    let server = TestServer::start(engine).await;
    let _platform = server
        .mesh_with(&["Alice"], MeshOptions::named("Platform team"))
        .await;
    let bob = server.register("Bob").await;
    let (status, body) = create_mesh(
        &server,
        &bob,
        json!({ "name": "Platform team", "public_key": public_key() }),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("slug_taken")));
    assert_eq!(body["suggestion"], "platform-team-2");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("platform-team-2")
    );

    let (status, _) = create_mesh(
        &server,
        &bob,
        json!({ "name": "Platform team", "slug": "platform-team-2", "public_key": public_key() }),
    )
    .await;
    assert_eq!(status, 201);
    let (_, body) = create_mesh(
        &server,
        &bob,
        json!({ "name": "Platform team", "public_key": public_key() }),
    )
    .await;
    assert_eq!(body["suggestion"], "platform-team-3");
}

async fn bad_input_never_leaves_an_orphan_mesh(engine: Engine) {
    let server = TestServer::start(engine).await;
    let alice = server.register("Alice").await;
    for body in [
        json!({ "name": "Good name", "public_key": "not hex" }),
        json!({ "name": "Good name", "public_key": public_key(), "slug": "Bad Slug" }),
        json!({ "name": "", "public_key": public_key() }),
        json!({ "name": "Good name", "public_key": public_key(), "display_name": "\u{0000}" }),
    ] {
        let (status, error) = create_mesh(&server, &alice, body.clone()).await;
        assert_eq!(
            (status, error["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    let (meshes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM meshes")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    let (members,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mesh_members")
        .fetch_one(server.state().pool())
        .await
        .unwrap();
    assert_eq!((meshes, members), (0, 0));
    // A name with nothing sluggable still gets a valid slug.
    let (status, mesh) = create_mesh(
        &server,
        &alice,
        json!({ "name": "!!!", "public_key": public_key() }),
    )
    .await;
    assert_eq!(status, 201, "{mesh}");
    assert!(claudemesh_api::Slug::parse(mesh["slug"].as_str().unwrap()).is_ok());
}

async fn accounts_only_see_their_own_meshes(engine: Engine) {
    let server = TestServer::start(engine).await;
    let _secret_plans = server
        .mesh_with(&["Alice"], MeshOptions::named("Secret plans"))
        .await;
    let bob = server.register("Bob").await;
    let (_, list) = send(bob.browser.get(server.url("/api/my/meshes"))).await;
    assert_eq!(list["meshes"], json!([]));
    for (status, body) in [
        detail(&server, &bob, "secret-plans").await,
        invite(&server, &bob, "secret-plans", json!({})).await,
        send(
            bob.browser
                .get(server.url("/api/my/meshes/secret-plans/invites")),
        )
        .await,
        send(
            bob.browser
                .post(server.url("/api/my/meshes/secret-plans/keys"))
                .json(&json!({ "public_key": public_key() })),
        )
        .await,
    ] {
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );
    }
}

async fn only_admins_manage_invites(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let bob = server.register("Bob").await;
    let (_, created) = invite(&server, &alice, "team", json!({})).await;
    assert_eq!(
        accept(&server, &bob, created["code"].as_str().unwrap())
            .await
            .0,
        200
    );

    let (status, body) = invite(&server, &bob, "team", json!({})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        send(bob.browser.get(server.url("/api/my/meshes/team/invites")))
            .await
            .0,
        403
    );
    let revoke = server.url(&format!(
        "/api/my/meshes/team/invites/{}",
        created["id"].as_str().unwrap()
    ));
    assert_eq!(send(bob.browser.delete(&revoke)).await.0, 403);
    // But a member sees the mesh and its members.
    let (status, detail) = detail(&server, &bob, "team").await;
    assert_eq!((status, detail["role"].as_str()), (200, Some("member")));

    // An admin invite makes another admin.
    let (_, admin_invite) = invite(&server, &alice, "team", json!({ "role": "admin" })).await;
    let carol = server.register("Carol").await;
    accept(&server, &carol, admin_invite["code"].as_str().unwrap()).await;
    assert_eq!(invite(&server, &carol, "team", json!({})).await.0, 201);
}

async fn an_invite_adds_a_member_once_and_then_is_used_up(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let bob = server.register("Bob").await;
    let carol = server.register("Carol").await;
    let (status, created) = invite(&server, &alice, "team", json!({})).await;
    assert_eq!(status, 201, "{created}");
    let code = created["code"].as_str().unwrap();
    assert_eq!(created["url"], server.url(&format!("/i/{code}")));
    assert_eq!(
        (created["max_uses"].as_u64(), created["role"].as_str()),
        (Some(1), Some("member"))
    );
    assert_eq!(created["emailed"], false);
    assert!(
        created.get("mail").is_none(),
        "no email, no mail: {created}"
    );

    let (status, preview) = send(
        server
            .anonymous()
            .get(server.url(&format!("/api/invites/{code}"))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            preview["mesh_name"].as_str(),
            preview["inviter_name"].as_str()
        ),
        (Some("Team"), Some("Alice"))
    );
    assert_eq!(preview["status"], "valid");

    // Accepting with the whole URL works as well as with the code.
    let (status, joined) =
        accept(&server, &bob, &urlencode(created["url"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(
        (
            joined["already_member"].as_bool(),
            joined["mesh"]["member_count"].as_u64()
        ),
        (Some(false), Some(2))
    );

    let (_, again) = accept(&server, &bob, code).await;
    assert_eq!(again["already_member"], true, "idempotent for a member");
    for user in [&alice, &bob] {
        let (_, detail) = detail(&server, user, "team").await;
        assert_eq!(detail["members"].as_array().unwrap().len(), 2);
    }
    let (status, body) = accept(&server, &carol, code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invite_used_up"))
    );
    let (_, preview) = send(
        server
            .anonymous()
            .get(server.url(&format!("/api/invites/{code}"))),
    )
    .await;
    assert_eq!(preview["status"], "used_up");
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('/', "%2F")
}

async fn expired_and_revoked_invites_say_so(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let bob = server.register("Bob").await;
    let (_, week) = invite(&server, &alice, "team", json!({})).await;
    let (_, month) = invite(&server, &alice, "team", json!({ "expires_in_days": 30 })).await;
    let (_, revoked) = invite(&server, &alice, "team", json!({ "max_uses": 10 })).await;
    let revoke = server.url(&format!(
        "/api/my/meshes/team/invites/{}",
        revoked["id"].as_str().unwrap()
    ));
    assert_eq!(send(alice.browser.delete(&revoke)).await.0, 200);
    assert_eq!(send(alice.browser.delete(&revoke)).await.0, 404);

    let (status, body) = accept(&server, &bob, revoked["code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("invite_revoked"))
    );

    server.clock.advance(Duration::from_secs(8 * 86_400));
    let (status, body) = accept(&server, &bob, week["code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("invite_expired"))
    );
    assert_eq!(
        accept(&server, &bob, month["code"].as_str().unwrap())
            .await
            .0,
        200
    );

    let (status, body) = accept(&server, &bob, "nosuchcode").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    for bad in [
        json!({ "expires_in_days": 0 }),
        json!({ "expires_in_days": 366 }),
        json!({ "max_uses": 0 }),
        json!({ "email": "nope" }),
        json!({ "role": "owner" }),
    ] {
        assert_eq!(
            invite(&server, &alice, "team", bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
}

async fn twenty_people_accepting_at_once_never_exceed_max_uses(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let (_, created) = invite(&server, &alice, "team", json!({ "max_uses": 5 })).await;
    let url = server.url(&format!(
        "/api/invites/{}/accept",
        created["code"].as_str().unwrap()
    ));
    let mut people = Vec::new();
    for i in 0..20 {
        people.push(server.register(&format!("Person {i}")).await);
    }
    let mut set = tokio::task::JoinSet::new();
    for person in people {
        let url = url.clone();
        set.spawn(async move {
            let response = person
                .browser
                .post(url)
                .json(&json!({ "public_key": public_key() }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let answers = set.join_all().await;
    let joined = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(joined, 5, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, body)| *status == 200 || body["error"] == "invite_used_up"),
        "{answers:?}"
    );
    let (_, detail) = detail(&server, &alice, "team").await;
    assert_eq!(detail["members"].as_array().unwrap().len(), 6);
}

async fn a_second_machine_registers_its_own_key(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let laptop = public_key();
    let keys = server.url("/api/my/meshes/team/keys");
    for _ in 0..2 {
        assert_eq!(
            send(
                alice
                    .browser
                    .post(&keys)
                    .json(&json!({ "public_key": laptop }))
            )
            .await
            .0,
            200
        );
    }
    let (_, detail) = detail(&server, &alice, "team").await;
    let registered = detail["members"][0]["public_keys"].as_array().unwrap();
    assert_eq!(
        registered.len(),
        2,
        "the creating machine's key and the laptop's, once"
    );
    assert!(registered.contains(&json!(laptop)));
    assert_eq!(
        send(
            alice
                .browser
                .post(&keys)
                .json(&json!({ "public_key": "zz" }))
        )
        .await
        .0,
        400
    );

    // Up to 100 keys; past that a new one is refused, a known one still fine.
    for _ in 2..100 {
        let (status, _) = send(
            alice
                .browser
                .post(&keys)
                .json(&json!({ "public_key": public_key() })),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, body) = send(
        alice
            .browser
            .post(&keys)
            .json(&json!({ "public_key": public_key() })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("at most 100"),
        "{body}"
    );
    let (status, _) = send(
        alice
            .browser
            .post(&keys)
            .json(&json!({ "public_key": laptop })),
    )
    .await;
    assert_eq!(status, 200);
}

async fn an_emailed_invite_arrives_in_the_inviters_language(engine: Engine) {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(
        engine,
        Options {
            smtp_url: Some(sink.url()),
            ..Options::default()
        },
    )
    .await;
    let platform = server
        .mesh_with(&["Alice"], MeshOptions::named("Platform team"))
        .await;
    let alice = platform.admin().user.clone();

    let (status, created) = invite(
        &server,
        &alice,
        "platform-team",
        json!({ "email": "bob@example.com" }),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["emailed"], true);
    assert_eq!(created["mail"], "sent");
    let (_, spanish) = invite(
        &server,
        &alice,
        "platform-team",
        json!({ "email": "ana@example.com", "lang": "es" }),
    )
    .await;
    assert_eq!(spanish["emailed"], true);

    let mail = sink.wait_for(2).await;
    assert_eq!(mail[0].to, vec!["bob@example.com".to_owned()]);
    assert_eq!(
        mail[0].subject(),
        "Alice invited you to Platform team on claudemesh"
    );
    assert!(
        mail[0].body().contains(created["url"].as_str().unwrap()),
        "{}",
        mail[0].body()
    );
    assert!(mail[0].body().contains("claudemesh join"));
    assert_eq!(mail[1].to, vec!["ana@example.com".to_owned()]);
    assert_eq!(
        mail[1].subject(),
        "Alice te invitó a Platform team en claudemesh"
    );
    assert!(
        mail[1].body().contains("Acepta en tu navegador"),
        "{}",
        mail[1].body()
    );
    assert!(mail[1].body().contains(spanish["url"].as_str().unwrap()));

    // Accept-Language picks the language when the request does not say.
    let (_, _) = send(
        alice
            .browser
            .post(server.url("/api/my/meshes/platform-team/invites"))
            .header("accept-language", "es-ES,es;q=0.9")
            .json(&json!({ "email": "eva@example.com" })),
    )
    .await;
    assert!(sink.wait_for(3).await[2].subject().contains("te invitó"));
}

async fn a_refusing_mail_server_does_not_lose_the_invite(engine: Engine) {
    let sink = SmtpSink::start_refusing().await;
    let server = TestServer::start_with(
        engine,
        Options {
            smtp_url: Some(sink.url()),
            ..Options::default()
        },
    )
    .await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let bob = server.register("Bob").await;
    let (status, created) = invite(
        &server,
        &alice,
        "team",
        json!({ "email": "bob@example.com" }),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["emailed"], false);
    assert_eq!(created["mail"], "failed");
    assert!(
        created["email_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(
        accept(&server, &bob, created["code"].as_str().unwrap())
            .await
            .0,
        200,
        "the invite still works"
    );
}

async fn without_smtp_mail_lands_in_the_outbox(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server.mesh(&["Alice"]).await;
    let alice = team.admin().user.clone();
    let (_, created) = invite(
        &server,
        &alice,
        "team",
        json!({ "email": "bob@example.com" }),
    )
    .await;
    // Written, but not sent: the answer says so, in both fields.
    assert_eq!(created["emailed"], false);
    assert_eq!(created["mail"], "outbox");
    assert!(
        created["email_error"]
            .as_str()
            .is_some_and(|e| e.contains("outbox") && e.contains("not sent")),
        "{created}"
    );
    let outbox = server.config().data_dir.join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("To: bob@example.com"), "{text}");
}

async fn members_leave_and_admins_remove_them(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mut mesh = server.mesh(&["Alice", "Bob", "Carol"]).await;
    let [alice, bob, carol] = ["Alice", "Bob", "Carol"].map(|name| mesh.member(name).user.clone());
    let carol_id = mesh.member("Carol").member_id.clone();

    // A member cannot remove anyone else.
    let (status, body) = bob.remove_member("team", &carol_id).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // Bob leaves: the mesh is gone from his list and closed to him.
    assert_eq!(bob.remove_member("team", "me").await.0, 200);
    let (_, list) = send(bob.browser.get(server.url("/api/my/meshes"))).await;
    assert_eq!(list["meshes"], json!([]));
    assert_eq!(detail(&server, &bob, "team").await.0, 404);
    assert_eq!(bob.remove_member("team", "me").await.0, 404);

    // Alice removes Carol; Carol's CLI token no longer reaches the mesh, and
    // a link from before the removal does not bring her back.
    let (_, old_link) = invite(&server, &alice, "team", json!({ "max_uses": 5 })).await;
    server.clock.advance(Duration::from_secs(60));
    assert_eq!(alice.remove_member("team", &carol_id).await.0, 200);
    let (status, body) = accept(&server, &carol, old_link["code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("removed_from_mesh"))
    );
    let carol_token = login(&server, &carol).await;
    let (status, _) = send(
        server
            .anonymous()
            .get(server.url("/api/my/meshes/team"))
            .bearer_auth(&carol_token),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = alice.remove_member("team", &carol_id).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (_, team) = detail(&server, &alice, "team").await;
    assert_eq!(team["member_count"], 1);

    // Someone who left can be invited back, and someone removed with a new
    // invite.
    mesh.join(&bob, MeshRole::Member).await;
    mesh.join(&carol, MeshRole::Member).await;
    assert_eq!(detail(&server, &alice, "team").await.1["member_count"], 3);

    let events: Vec<String> = server
        .audit_events()
        .await
        .into_iter()
        .map(|(event, _, _)| event)
        .collect();
    for event in ["mesh.member.left", "mesh.member.removed"] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

async fn the_only_admin_cannot_go(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mut mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = mesh.admin().user.clone();
    let alice_id = mesh.admin().member_id.clone();
    for member in ["me", alice_id.as_str()] {
        let (status, body) = alice.remove_member("team", member).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("last_admin")));
        assert!(
            body["message"].as_str().unwrap().contains("--role admin"),
            "says what to do: {body}"
        );
    }
    // With a second admin, the first may leave.
    let carol = server.register("Carol").await;
    mesh.join(&carol, MeshRole::Admin).await;
    assert_eq!(alice.remove_member("team", "me").await.0, 200);
    let (_, team) = detail(&server, &carol, "team").await;
    let mut roles: Vec<_> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["display_name"].clone(), m["role"].clone()))
        .collect();
    roles.sort_by_key(|(name, _)| name.to_string());
    assert_eq!(
        roles,
        [
            (json!("Bob"), json!("member")),
            (json!("Carol"), json!("admin"))
        ]
    );
}

async fn two_admins_removing_each_other_leave_one(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server
        .mesh_with(&["Alice", "Dave"], MeshOptions::default().admin("Dave"))
        .await;
    let (alice, dave) = (&team.member("Alice").user, &team.member("Dave").user);
    let alice_id = &team.member("Alice").member_id;
    let dave_id = &team.member("Dave").member_id;
    let (first, second) = tokio::join!(
        alice.remove_member("team", dave_id),
        dave.remove_member("team", alice_id),
    );
    // One wins; the other finds itself removed (404) or the winner the
    // last admin (409), depending on which reached the database first.
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert!(
        statuses == [200, 404] || statuses == [200, 409],
        "{first:?} {second:?}"
    );
    let survivor = if first.0 == 200 { alice } else { dave };
    let (_, team) = detail(&server, survivor, "team").await;
    let members = team["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["role"], "admin");
}

async fn the_invites_of_a_removed_admin_stop_working(engine: Engine) {
    let server = TestServer::start(engine).await;
    let team = server
        .mesh_with(&["Alice", "Dave"], MeshOptions::default().admin("Dave"))
        .await;
    let (alice, dave) = (
        team.member("Alice").user.clone(),
        team.member("Dave").user.clone(),
    );
    let erin = server.register("Erin").await;
    let (_, daves) = invite(&server, &dave, "team", json!({ "max_uses": 10 })).await;
    let (_, alices) = invite(&server, &alice, "team", json!({})).await;
    let dave_id = &team.member("Dave").member_id;
    assert_eq!(alice.remove_member("team", dave_id).await.0, 200);
    let (status, body) = accept(&server, &erin, daves["code"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("invite_revoked"))
    );
    // Alice's own invites are untouched.
    assert_eq!(
        accept(&server, &erin, alices["code"].as_str().unwrap())
            .await
            .0,
        200
    );
}
