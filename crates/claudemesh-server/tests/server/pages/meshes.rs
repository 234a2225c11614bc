//! Meshes on the dashboard, the mesh page (who is online, members, invites),
//! and `/i/{code}`.

use super::browser::*;
use claudemesh_api::broker::PeerStatus;
use claudemesh_client::{Client, Presence};
use claudemesh_server::clock::Clock;
use claudemesh_testkit::{Mesh, member_id};

on_both_engines!(
    mesh_pages_check_membership_and_role,
    each_state_of_an_invite_has_its_own_page,
    members_are_removed_and_leave_after_a_confirmation,
    the_mesh_page_shows_who_is_online,
    every_member_edits_their_own_grants_on_the_mesh_page,
);

#[tokio::test]
async fn the_dashboard_lists_only_your_meshes() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (carol, _) = Browser::signed_in(&server, "Carol").await;
    let empty = alice.get("/dashboard").await;
    assert!(empty.raw_contains(r#"data-testid="no-meshes""#));
    assert!(empty.contains(r#"<code>claudemesh create "Name"</code>"#));

    assert_eq!(alice.create_mesh("Platform team").await, "platform-team");
    assert_eq!(alice.create_mesh("Ops <on call>").await, "ops-on-call");
    bob.create_mesh("Bob's secret mesh").await;
    // Bob joins Platform team: it shows 2 members to both, Bob as Member.
    let invite = alice.api_invite("platform-team", json!({})).await;
    let joined = bob.accept_on_page(invite["code"].as_str().unwrap()).await;
    assert_eq!(joined.status, 303);

    let dashboard = alice.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(!dashboard.raw_contains(r#"data-testid="no-meshes""#));
    assert!(dashboard.raw_contains(r#"href="/dashboard/meshes/platform-team""#));
    assert!(dashboard.raw_contains(r#"href="/dashboard/meshes/ops-on-call""#));
    assert!(
        dashboard.contains("Ops <on call>") && !dashboard.raw_contains("<on call>"),
        "names are escaped"
    );
    assert!(!dashboard.contains("Bob's secret mesh"));
    let row = |page: &Page, slug: &str| {
        let at = page.body.find(&format!("<code>{slug}</code>")).unwrap();
        let end = at + page.body[at..].find("</tr>").unwrap();
        page.body[at..end].to_owned()
    };
    let platform = row(&dashboard, "platform-team");
    assert!(platform.contains(">Admin<"), "{platform}");
    assert!(platform.contains(">2<"), "{platform}");
    assert!(platform.contains(" UTC<"), "the created time: {platform}");
    assert!(row(&dashboard, "ops-on-call").contains(">1<"));

    let bobs = bob.get("/dashboard").await;
    assert!(bobs.contains("Bob's secret mesh") && bobs.contains("Platform team"));
    assert!(row(&bobs, "platform-team").contains(">Member<"));
    assert!(!bobs.contains("Ops <on call>"));
    assert!(
        carol
            .get("/dashboard")
            .await
            .raw_contains(r#"data-testid="no-meshes""#)
    );
}

async fn mesh_pages_check_membership_and_role(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (eve, _) = Browser::signed_in(&server, "Eve").await;
    let slug = alice.create_mesh("Platform team").await;
    let path = format!("/dashboard/meshes/{slug}");

    // Signed out: sign in and come back.
    let anonymous = Browser::new(&server, Some(&server.base_url));
    let away = anonymous.get(&path).await;
    assert_eq!(away.status, 303);
    assert_eq!(
        away.location(),
        "/login?next=%2Fdashboard%2Fmeshes%2Fplatform-team"
    );

    // A non-member gets exactly the page of a mesh that does not exist.
    let not_mine = eve.get(&path).await;
    let unknown = eve.get("/dashboard/meshes/no-such-mesh").await;
    assert_eq!(not_mine.status, 404);
    assert_eq!(unknown.status, 404);
    assert_eq!(not_mine.title(), "Mesh not found");
    let main = |page: &Page| page.body[page.body.find("<main>").unwrap()..].to_owned();
    assert_eq!(main(&not_mine), main(&unknown), "the same page");
    assert!(!not_mine.contains("Platform team"));
    let eve_csrf = eve.get("/dashboard").await.csrf();
    let eve_post = eve
        .post(
            &format!("{path}/invites"),
            &[
                ("role", "admin"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &eve_csrf),
            ],
        )
        .await;
    assert_eq!(eve_post.status, 404);
    assert_eq!(
        eve.get(&format!("{path}/invites/revoke?id=x")).await.status,
        404
    );

    // The admin's page: the mesh, one member (you), the invite form.
    let page = alice.get(&path).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.title(), "Platform team");
    assert!(page.raw_contains(r#"<code data-testid="mesh-slug">platform-team</code>"#));
    assert!(page.raw_contains(r#"data-testid="your-role">Admin<"#));
    assert!(page.raw_contains(r#"data-testid="you""#));
    assert!(page.raw_contains(&format!(r#"action="{path}/invites""#)));
    assert!(page.contains("No invites yet."));
    assert!(page.contains("<code>claudemesh sync</code>"));

    // The admin makes an invite on the page and sees its link.
    let created = alice
        .invite_on_page(
            &slug,
            &[
                ("email", ""),
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let url = created.new_invite_url();
    assert!(url.starts_with(&format!("{}/i/", server.base_url)), "{url}");
    assert!(
        !created.raw_contains(r#"data-testid="email-status""#),
        "no email"
    );
    assert!(created.raw_contains(&format!(r#"value="{url}""#)));
    assert!(created.raw_contains(r#"data-testid="invite-status">Valid<"#));
    assert!(created.raw_contains(r#"<script src="/static/copy.js" defer></script>"#));
    let code = code_of(&url);
    let listed = alice.api_invites(&slug).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["code"], code.as_str());
    assert_eq!(listed[0]["role"], "member");
    assert_eq!(listed[0]["max_uses"], 1);

    // Bob joins with it: a member sees the mesh and members, no invites.
    assert_eq!(bob.accept_on_page(&code).await.status, 303);
    let members_view = bob.get(&path).await;
    assert_eq!(members_view.status, 200);
    assert!(members_view.raw_contains(r#"data-testid="your-role">Member<"#));
    assert!(members_view.contains("Alice") && members_view.contains("Bob"));
    assert!(members_view.contains("2 members"));
    assert!(!members_view.raw_contains(r#"id="invites""#));
    assert!(!members_view.raw_contains("/invites\""), "no invite form");
    assert!(!members_view.contains(&code), "no invite links");
    assert!(!members_view.raw_contains("copy.js"));
    // "you" marks Bob's own row; Alice has one machine key, Bob none yet.
    let bob_row = {
        let at = members_view.body.find(r#"<tr class="you">"#).unwrap();
        let end = at + members_view.body[at..].find("</tr>").unwrap();
        members_view.body[at..end].to_owned()
    };
    assert!(
        bob_row.contains("Bob") && bob_row.contains(">Member<"),
        "{bob_row}"
    );
    assert!(
        bob_row.contains(r#"data-label="Machine keys">0<"#),
        "{bob_row}"
    );
    let alice_page = alice.get(&path).await;
    assert!(alice_page.raw_contains(r#"data-label="Machine keys">1<"#));
    assert!(alice_page.raw_contains(r#"data-testid="invite-status">Used up<"#));

    // Any invite request from a member is refused, and changes nothing.
    let bob_csrf = members_view.csrf();
    let refused = bob
        .post(
            &format!("{path}/invites"),
            &[
                ("role", "admin"),
                ("expires_in_days", "7"),
                ("max_uses", "5"),
                ("csrf", &bob_csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "Only admins can do this");
    let live = alice.api_invite(&slug, json!({ "max_uses": 3 })).await;
    let live_id = live["id"].as_str().unwrap();
    let confirm = bob
        .get(&format!("{path}/invites/revoke?id={live_id}"))
        .await;
    assert_eq!(confirm.status, 403);
    let revoke = bob
        .post(
            &format!("{path}/invites/revoke"),
            &[("id", live_id), ("csrf", &bob_csrf)],
        )
        .await;
    assert_eq!(revoke.status, 403);
    let after = alice.api_invites(&slug).await;
    assert_eq!(after.len(), 2, "the member created nothing");
    assert!(
        after.iter().all(|invite| invite["revoked"] == false),
        "the member revoked nothing"
    );
}

#[tokio::test]
async fn an_invite_is_revoked_after_a_confirmation_step() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice
        .api_invite(
            &slug,
            json!({ "email": "bob@example.com", "role": "admin" }),
        )
        .await;
    let (id, code) = (
        invite["id"].as_str().unwrap(),
        invite["code"].as_str().unwrap(),
    );
    let page = alice.get(&format!("/dashboard/meshes/{slug}")).await;
    let revoke_url = format!("/dashboard/meshes/{slug}/invites/revoke?id={id}");
    assert!(page.contains(&format!(r#"href="{revoke_url}""#)));
    assert!(page.contains("bob@example.com") && page.contains("0 / 1"));

    let confirm = alice.get(&revoke_url).await;
    assert_eq!(confirm.status, 200);
    assert_eq!(confirm.title(), "Revoke this invite?");
    assert!(confirm.contains(&format!("/i/{code}")) && confirm.contains("Admin"));
    assert!(
        confirm.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)),
        "cancel"
    );
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{code}"))
            .await
            .status,
        200,
        "asking is not revoking"
    );

    let done = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites/revoke"),
            &[("id", id), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location(),
        format!("/dashboard/meshes/{slug}?notice=revoked")
    );
    let after = alice.get(done.location()).await;
    assert!(after.contains("Invite revoked. Its link no longer works."));
    assert!(after.raw_contains(r#"data-testid="invite-status">Revoked<"#));
    assert!(
        !after.contains(&format!(r#"href="{revoke_url}""#)),
        "no revoke twice"
    );
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{code}"))
            .await
            .status,
        410
    );
    let again = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites/revoke"),
            &[("id", id), ("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.title(), "Nothing to revoke");
    assert_eq!(alice.get(&revoke_url).await.status, 404);
    assert_eq!(
        alice
            .get(&format!("/dashboard/meshes/{slug}/invites/revoke?id=nope"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_invite_form_checks_its_fields() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let page = alice
        .invite_on_page(
            &slug,
            &[
                ("email", "not-an-email"),
                ("role", "owner"),
                ("expires_in_days", "366"),
                ("max_uses", "0"),
            ],
        )
        .await;
    assert_eq!(page.status, 400);
    assert!(page.contains("That is not a valid email address."));
    assert!(page.contains("Choose the role Member or Admin."));
    assert!(page.contains("Choose an expiry of 1 to 365 days."));
    assert!(page.contains("Choose a number of uses from 1 to 1000."));
    assert!(page.contains(r#"value="not-an-email""#), "kept as typed");
    assert!(page.contains(r#"name="expires_in_days" type="number" inputmode="numeric" min="1" max="365" required value="366""#));
    for (days, uses) in [("0", "1"), ("seven", "1"), ("7", "1001"), ("", "")] {
        let page = alice
            .invite_on_page(
                &slug,
                &[
                    ("role", "member"),
                    ("expires_in_days", days),
                    ("max_uses", uses),
                ],
            )
            .await;
        assert_eq!(page.status, 400, "{days:?} {uses:?}");
    }
    assert!(alice.api_invites(&slug).await.is_empty());

    // The defaults the form starts with are what the API defaults to.
    let fresh = alice.get(&format!("/dashboard/meshes/{slug}")).await;
    assert!(fresh.contains(r#"max="365" required value="7""#));
    assert!(fresh.contains(r#"max="1000" required value="1""#));
    assert!(fresh.contains(r#"<option value="member" selected>Member</option>"#));
    let admin = alice
        .invite_on_page(
            &slug,
            &[
                ("email", " "),
                ("role", "admin"),
                ("expires_in_days", "30"),
                ("max_uses", "5"),
            ],
        )
        .await;
    assert_eq!(admin.status, 201);
    let listed = alice.api_invites(&slug).await;
    assert_eq!(listed[0]["role"], "admin");
    assert_eq!(listed[0]["max_uses"], 5);
    assert_eq!(listed[0]["email"], Value::Null);
}

#[tokio::test]
async fn the_mesh_page_says_whether_the_invite_was_emailed() {
    use claudemesh_testkit::{Options, SmtpSink};
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(
        Engine::Sqlite,
        Options {
            smtp_url: Some(sink.url()),
            ..Options::default()
        },
    )
    .await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let form = [
        ("email", "bob@example.com"),
        ("role", "member"),
        ("expires_in_days", "7"),
        ("max_uses", "1"),
    ];
    let sent = alice.invite_on_page(&slug, &form).await;
    assert_eq!(sent.status, 201);
    assert!(
        sent.contains("Emailed to bob@example.com."),
        "{}",
        sent.body
    );
    let mail = sink.wait_for(1).await;
    assert!(mail[0].body().contains(&sent.new_invite_url()));
    assert_eq!(mail[0].subject(), "Alice invited you to Team on claudemesh");

    // In Spanish, the mail is in Spanish too.
    let page = alice
        .get(&format!("/dashboard/meshes/{slug}?lang=es"))
        .await;
    let spanish = alice
        .post(
            &format!("/dashboard/meshes/{slug}/invites"),
            &[
                ("email", "ana@example.com"),
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert!(spanish.contains("Enviado por correo a ana@example.com."));
    assert!(sink.wait_for(2).await[1].subject().contains("te invitó"));

    let refusing = SmtpSink::start_refusing().await;
    let server = TestServer::start_with(
        Engine::Sqlite,
        Options {
            smtp_url: Some(refusing.url()),
            ..Options::default()
        },
    )
    .await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let slug = alice.create_mesh("Team").await;
    let failed = alice.invite_on_page(&slug, &form).await;
    assert_eq!(failed.status, 201, "the invite exists anyway");
    assert!(
        failed.contains("Could not email bob@example.com: "),
        "{}",
        failed.body
    );
    assert!(failed.contains("— share the link yourself."));
    let url = failed.new_invite_url();
    assert_eq!(
        Browser::new(&server, None)
            .get(&format!("/i/{}", code_of(&url)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn mesh_and_invite_forms_need_the_token() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (evil, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;
    let (bob, _) = Browser::signed_in_from(&server, "Bob", Some(EVIL)).await;
    let slug = evil.create_mesh("Team").await;
    let path = format!("/dashboard/meshes/{slug}");
    let fields = [
        ("role", "admin"),
        ("expires_in_days", "365"),
        ("max_uses", "1000"),
    ];
    let no_token = evil.post(&format!("{path}/invites"), &fields).await;
    assert_eq!(no_token.status, 403);
    assert!(no_token.contains("Request refused"));
    let mut wrong = fields.to_vec();
    wrong.push(("csrf", "guess"));
    assert_eq!(
        evil.post(&format!("{path}/invites"), &wrong).await.status,
        403
    );
    assert!(
        evil.api_invites(&slug).await.is_empty(),
        "nothing was created"
    );
    // The page's own token passes (the API's rule).
    assert_eq!(evil.invite_on_page(&slug, &fields).await.status, 201);

    let invite = evil.api_invite(&slug, json!({})).await;
    let (id, code) = (
        invite["id"].as_str().unwrap(),
        invite["code"].as_str().unwrap(),
    );
    let revoke = evil
        .post(&format!("{path}/invites/revoke"), &[("id", id)])
        .await;
    assert_eq!(revoke.status, 403);
    let accept = bob.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(accept.status, 403);
    let accept = bob.post(&format!("/i/{code}"), &[("csrf", "guess")]).await;
    assert_eq!(accept.status, 403);
    assert_eq!(bob.api_mesh(&slug).await.0, 404, "Bob did not join");
    assert!(
        evil.api_invites(&slug)
            .await
            .iter()
            .all(|invite| invite["revoked"] == false && invite["uses"] == 0)
    );
}

async fn each_state_of_an_invite_has_its_own_page(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice García").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (carol, _) = Browser::signed_in(&server, "Carol").await;
    let slug = alice.create_mesh("Platform <team>").await;
    let anonymous = Browser::new(&server, Some(&server.base_url));

    // Valid, signed out: what it is, and a way to sign in and come back.
    let invite = alice.api_invite(&slug, json!({ "role": "admin" })).await;
    let code = invite["code"].as_str().unwrap().to_owned();
    let valid = anonymous.get(&format!("/i/{code}")).await;
    assert_eq!(valid.status, 200);
    assert_eq!(valid.header("cache-control"), "no-store");
    assert_eq!(
        valid.title(),
        "Alice García invited you to join Platform <team>"
    );
    assert!(!valid.raw_contains("<team>"), "escaped");
    assert!(valid.raw_contains(r#"data-testid="invite-role">Admin<"#));
    assert!(valid.raw_contains(r#"data-testid="invite-inviter">Alice García<"#));
    assert!(valid.contains(" UTC"), "the expiry");
    let next = format!("%2Fi%2F{code}");
    assert!(valid.contains(&format!(r#"href="/login?next={next}""#)));
    assert!(valid.contains(&format!(r#"href="/register?next={next}""#)));
    assert!(valid.contains("Sign in to accept"));
    assert!(!valid.raw_contains(r#"name="csrf""#), "no form signed out");
    // Posting signed out goes to sign in, too.
    let post = anonymous.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(post.status, 303);
    assert_eq!(post.location(), format!("/login?next={next}"));

    // Valid, signed in: an Accept form.
    let signed_in = bob.get(&format!("/i/{code}")).await;
    assert_eq!(signed_in.status, 200);
    assert!(signed_in.raw_contains(&format!(r#"<form method="post" action="/i/{code}""#)));
    assert!(signed_in.contains("Accept and join") && signed_in.contains("You will join as"));

    // Already a member (the admin who made it): nothing to accept.
    let member = alice.get(&format!("/i/{code}")).await;
    assert_eq!(member.status, 200);
    assert_eq!(member.title(), "You are already in Platform <team>");
    assert!(member.contains("<code>claudemesh sync</code>"));
    assert!(member.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)));

    // Unknown.
    for unknown in [
        "/i/nosuchcode",
        "/i/%FF%FE",
        &format!("/i/{}", "a".repeat(3000)),
    ] {
        let page = anonymous.get(unknown).await;
        assert_eq!(page.status, 404, "{unknown}");
        assert_eq!(page.title(), "Invitation not found");
    }
    assert_eq!(
        bob.post("/i/nosuchcode", &[("csrf", &signed_in.csrf())])
            .await
            .status,
        404
    );

    // Used up: Bob takes the only use, Carol is too late.
    assert_eq!(bob.accept_on_page(&code).await.status, 303);
    let used_up = carol.get(&format!("/i/{code}")).await;
    assert_eq!(used_up.status, 409);
    assert_eq!(used_up.title(), "This invitation has been used up");
    assert!(used_up.contains("ask Alice García for a new invitation"));
    assert_eq!(anonymous.get(&format!("/i/{code}")).await.status, 409);
    let late = carol
        .post(&format!("/i/{code}"), &[("csrf", &used_up.csrf())])
        .await;
    assert_eq!(late.status, 409);
    assert_eq!(carol.api_mesh(&slug).await.0, 404);

    // Revoked.
    let revoked = alice.api_invite(&slug, json!({})).await;
    let revoked_code = revoked["code"].as_str().unwrap();
    let carol_page = carol.get(&format!("/i/{revoked_code}")).await;
    let (status, _) = alice
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/api/my/meshes/{slug}/invites/{}",
                revoked["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let page = anonymous.get(&format!("/i/{revoked_code}")).await;
    assert_eq!(page.status, 410);
    assert_eq!(page.title(), "This invitation was revoked");
    // Accepting a page opened before the revocation shows the same page.
    let late = carol
        .post(
            &format!("/i/{revoked_code}"),
            &[("csrf", &carol_page.csrf())],
        )
        .await;
    assert_eq!(late.status, 410);
    assert_eq!(late.title(), "This invitation was revoked");

    // Expired.
    let expiring = alice
        .api_invite(&slug, json!({ "expires_in_days": 1 }))
        .await;
    let expiring_code = expiring["code"].as_str().unwrap();
    server.clock.advance(Duration::from_secs(86_400 + 1));
    let page = carol.get(&format!("/i/{expiring_code}")).await;
    assert_eq!(page.status, 410);
    assert_eq!(page.title(), "This invitation has expired");
    assert!(page.contains("expired on"));
    let late = carol
        .post(&format!("/i/{expiring_code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(late.status, 410);
    assert_eq!(carol.api_mesh(&slug).await.0, 404, "Carol never joined");
    // A member still gets the friendly page, whatever the invite's state.
    assert_eq!(bob.get(&format!("/i/{expiring_code}")).await.status, 200);
}

#[tokio::test]
async fn signing_in_from_an_invite_comes_back_to_accept_it() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (_, bob_email) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice.api_invite(&slug, json!({ "max_uses": 5 })).await;
    let code = invite["code"].as_str().unwrap();
    let url = invite["url"].as_str().unwrap();

    let browser = Browser::new(&server, Some(&server.base_url));
    let invitation = browser.get(&format!("/i/{code}")).await;
    let login_href = format!("/login?next=%2Fi%2F{code}");
    assert!(invitation.contains(&login_href));
    let login = browser.get(&login_href).await;
    assert_eq!(login.status, 200);
    assert!(login.contains("Sign in to accept your invitation."));
    assert!(login.contains(&format!(r#"name="next" value="/i/{code}""#)));
    assert!(
        login.contains(&format!(r#"href="/register?next=%2Fi%2F{code}""#)),
        "the register link keeps next"
    );
    let signed_in = browser
        .post(
            "/login",
            &[
                ("email", &bob_email),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/i/{code}")),
                ("csrf", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location(), format!("/i/{code}"));
    let accepted = browser.accept_on_page(code).await;
    assert_eq!(accepted.status, 303);
    assert_eq!(accepted.location(), format!("/i/{code}/joined"));
    let joined = browser.get(accepted.location()).await;
    assert_eq!(joined.status, 200);
    assert_eq!(joined.title(), "You joined Team");
    assert!(joined.contains("<code>claudemesh sync</code>"));
    assert!(joined.contains(&format!("<code>claudemesh join {url}</code>")));
    assert!(joined.contains(&format!(r#"href="/dashboard/meshes/{slug}""#)));

    // Registering from the invite comes back the same way.
    let newcomer = Browser::new(&server, Some(&server.base_url));
    let register = newcomer.get(&format!("/register?next=%2Fi%2F{code}")).await;
    assert!(register.contains("Create your account to accept your invitation."));
    assert!(register.contains(&format!(r#"name="next" value="/i/{code}""#)));
    let registered = newcomer
        .post(
            "/register",
            &[
                ("name", "Dana"),
                ("email", "dana@example.com"),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/i/{code}")),
                ("csrf", &register.csrf()),
            ],
        )
        .await;
    assert_eq!(registered.status, 303);
    assert_eq!(registered.location(), format!("/i/{code}"));
    assert_eq!(newcomer.accept_on_page(code).await.status, 303);
    let (_, detail) = alice.api_mesh(&slug).await;
    let mut names: Vec<_> = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice", "Bob", "Dana"]);

    // Someone else's joined page sends them to the invite itself.
    let (stranger, _) = Browser::signed_in(&server, "Stranger").await;
    let other = stranger.get(&format!("/i/{code}/joined")).await;
    assert_eq!(other.status, 303);
    assert_eq!(other.location(), format!("/i/{code}"));
    let signed_out = Browser::new(&server, None)
        .get(&format!("/i/{code}/joined"))
        .await;
    assert_eq!(signed_out.status, 303);
    assert!(signed_out.location().starts_with("/login?next="));
}

#[tokio::test]
async fn accepting_adds_the_member_once() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice.api_invite(&slug, json!({ "max_uses": 3 })).await;
    let code = invite["code"].as_str().unwrap();
    assert_eq!(bob.api_mesh(&slug).await.0, 404);

    let page = bob.get(&format!("/i/{code}")).await;
    let first = bob
        .post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(first.status, 303);
    assert_eq!(first.location(), format!("/i/{code}/joined"));
    let (status, detail) = bob.api_mesh(&slug).await;
    assert_eq!(status, 200);
    assert_eq!(detail["role"], "member");
    let me = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["you"] == true)
        .unwrap()
        .clone();
    assert_eq!(me["display_name"], "Bob");
    assert_eq!(me["public_keys"], json!([]), "the browser registers no key");

    // The same form again (a double click, a reload): nothing changes.
    let second = bob
        .post(&format!("/i/{code}"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(second.status, 303);
    assert_eq!(second.location(), format!("/i/{code}"));
    let again = bob.get(second.location()).await;
    assert_eq!(again.title(), "You are already in Team");
    let invites = alice.api_invites(&slug).await;
    assert_eq!(invites[0]["uses"], 1, "the second accept used nothing");
    assert_eq!(
        alice.api_mesh(&slug).await.1["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let events: Vec<_> = server
        .audit_events()
        .await
        .into_iter()
        .filter(|(event, _, _)| event == "mesh.invite.accepted")
        .collect();
    assert_eq!(events.len(), 1);
    // The mesh is on Bob's dashboard now.
    assert!(
        bob.get("/dashboard")
            .await
            .contains(&format!(r#"href="/dashboard/meshes/{slug}""#))
    );
}

#[tokio::test]
async fn the_mesh_and_invite_pages_read_in_spanish() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Equipo").await;
    let dashboard = alice.get("/dashboard?lang=es").await;
    assert!(dashboard.contains(r#"<html lang="es">"#));
    assert!(dashboard.contains(">Tu rol<") && dashboard.contains(">Administrador<"));
    assert!(
        bob.get("/dashboard?lang=es")
            .await
            .contains(r#"<code>claudemesh create "Nombre"</code>"#)
    );

    let created = alice
        .invite_on_page(
            &slug,
            &[
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    assert!(created.contains("Tu nuevo enlace de invitación"));
    assert!(created.contains(">Válida<") && created.contains(">Miembros<"));
    assert!(created.contains("Crear invitación") && created.contains("Caduca en (días)"));
    assert!(created.contains(r#"<option value="admin">Administrador</option>"#));
    let code = code_of(&created.new_invite_url());

    let anonymous = Browser::new(&server, Some(&server.base_url));
    let invitation = anonymous
        .get_with(
            &format!("/i/{code}"),
            header::ACCEPT_LANGUAGE,
            "es-ES,es;q=0.9",
        )
        .await;
    assert!(invitation.contains(r#"<html lang="es">"#));
    assert_eq!(invitation.title(), "Alice te invitó a unirte a Equipo");
    assert!(
        invitation.contains("Inicia sesión para aceptar") && invitation.contains("Invitación de")
    );

    let accept = bob.get(&format!("/i/{code}")).await;
    assert!(accept.contains("Aceptar y unirme"));
    let done = bob
        .post(&format!("/i/{code}"), &[("csrf", &accept.csrf())])
        .await;
    let joined = bob.get(done.location()).await;
    assert_eq!(joined.title(), "Te uniste a Equipo");
    assert!(joined.contains("ejecuta <code>claudemesh sync</code>"));
    let mesh = bob.get(&format!("/dashboard/meshes/{slug}")).await;
    assert!(mesh.contains(">tú<") && mesh.contains("Claves de máquina"));
    assert!(mesh.contains("2 miembros"));
    assert_eq!(
        bob.get(&format!("/i/{code}")).await.title(),
        "Ya estás en Equipo"
    );
    let used_up = anonymous.get(&format!("/i/{code}?lang=es")).await;
    assert_eq!(used_up.title(), "Esta invitación está agotada");
    assert_eq!(
        anonymous.get("/i/nope").await.title(),
        "Invitación no encontrada"
    );
    let refused = bob
        .post(
            &format!("/dashboard/meshes/{slug}/invites"),
            &[
                ("role", "member"),
                ("expires_in_days", "7"),
                ("max_uses", "1"),
                ("csrf", &mesh.csrf()),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.title(),
        "Solo los administradores pueden hacer esto"
    );
    assert_eq!(
        bob.get("/dashboard/meshes/nope").await.title(),
        "Mesh no encontrado"
    );
}

/// The `<tr>` of the members table that names `name`.
fn member_row(page: &Page, name: &str) -> Option<String> {
    let at = page.body.find(&format!("<strong>{name}</strong>"))?;
    let start = page.body[..at].rfind("<tr").unwrap();
    let end = at + page.body[at..].find("</tr>").unwrap();
    Some(page.body[start..end].to_owned())
}

async fn members_are_removed_and_leave_after_a_confirmation(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let (carol, _) = Browser::signed_in(&server, "Carol").await;
    let slug = alice.create_mesh("Team").await;
    let path = format!("/dashboard/meshes/{slug}");
    for person in [&bob, &carol] {
        let invite = alice.api_invite(&slug, json!({})).await;
        let joined = person
            .accept_on_page(invite["code"].as_str().unwrap())
            .await;
        assert_eq!(joined.status, 303);
    }
    let (status, detail) = alice.api_mesh(&slug).await;
    assert_eq!(status, 200, "{detail}");
    let [carol_id, bob_id, alice_id] =
        ["Carol", "Bob", "Alice"].map(|name| member_id(&detail, name));

    // The admin may remove others; as the only admin, she has no Leave.
    let page = alice.get(&path).await;
    for name in ["Bob", "Carol"] {
        let row = member_row(&page, name).unwrap();
        assert!(row.contains(">Remove</a>"), "{row}");
    }
    assert!(!member_row(&page, "Alice").unwrap().contains("</a>"));
    // A member may only leave.
    let page = bob.get(&path).await;
    assert!(member_row(&page, "Bob").unwrap().contains(">Leave</a>"));
    assert!(!member_row(&page, "Carol").unwrap().contains("</a>"));
    let refused = bob
        .get(&format!("{path}/members/remove?id={carol_id}"))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "Only admins can do this");

    let old_link = alice.api_invite(&slug, json!({ "max_uses": 5 })).await;
    server.clock.advance(Duration::from_secs(60));

    // Asking never removes; confirming does.
    let ask = alice
        .get(&format!("{path}/members/remove?id={carol_id}"))
        .await;
    assert_eq!(ask.status, 200);
    assert_eq!(ask.title(), "Remove Carol from Team?");
    assert!(ask.contains("Carol · Member"));
    assert!(member_row(&alice.get(&path).await, "Carol").is_some());
    let removed = alice
        .post(
            &format!("{path}/members/remove"),
            &[("id", &carol_id), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(removed.status, 303);
    assert_eq!(removed.location(), format!("{path}?notice=member-removed"));
    let after = alice.get(removed.location()).await;
    assert!(after.contains("Member removed."));
    assert!(member_row(&after, "Carol").is_none());
    assert_eq!(carol.get(&path).await.status, 404, "Carol is out");
    let refused = carol
        .accept_on_page(old_link["code"].as_str().unwrap())
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "You were removed from this mesh");
    let again = alice
        .post(
            &format!("{path}/members/remove"),
            &[("id", &carol_id), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.title(), "Nobody to remove");

    // The only admin cannot leave, even by posting the form herself.
    let stuck = alice
        .post(
            &format!("{path}/members/remove"),
            &[("id", &alice_id), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(stuck.status, 409);
    assert_eq!(stuck.title(), "You are the only admin");

    // Bob leaves, and lands on his dashboard without the mesh.
    let ask = bob.get(&format!("{path}/members/remove?id={bob_id}")).await;
    assert_eq!(ask.title(), "Leave Team?");
    let left = bob
        .post(
            &format!("{path}/members/remove"),
            &[("id", &bob_id), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(left.location(), "/dashboard?notice=left");
    let dashboard = bob.get(left.location()).await;
    assert!(dashboard.contains("You left the mesh."));
    assert!(!dashboard.contains("Team"));
    let (_, detail) = alice.api_mesh(&slug).await;
    assert_eq!(member_id(&detail, "Alice"), alice_id);
    assert_eq!(detail["member_count"], 1);
}

/// A broker session of member `who` with `presence`, as the CLI connects
/// one (attested for 23 hours).
async fn connect(server: &TestServer, mesh: &Mesh, who: usize, presence: Presence) -> Client {
    let identity = mesh.identity_until(who, server.clock.now_ms() + 23 * 3_600_000);
    mesh.session(identity, presence)
        .await
        .expect("the session connects")
}

/// Reloads `path` until `done` says so (presence changes a moment after the
/// connection does), for 10 seconds at most.
async fn page_until(browser: &Browser, path: &str, done: impl Fn(&Page) -> bool) -> Page {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = browser.get(path).await;
        if done(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page did not change in time: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The entry of "Online now" for the session called `name`.
fn session_item(page: &Page, name: &str) -> Option<String> {
    let at = page.body.find(&format!(
        r#"<strong data-testid="session-name">{name}</strong>"#
    ))?;
    let start = page.body[..at].rfind("<li").unwrap();
    let end = at + page.body[at..].find("</li>").unwrap();
    Some(page.body[start..end].to_owned())
}

fn online_marker(count: &str) -> String {
    format!(r#"data-testid="member-online" title="{count}">online<"#)
}

async fn the_mesh_page_shows_who_is_online(engine: Engine) {
    let server = TestServer::start(engine).await;
    let mesh = server.mesh(&["Alice", "Bob"]).await;
    let alice = Browser::of(&server, &mesh.member("Alice").user);
    let bob = Browser::of(&server, &mesh.member("Bob").user);
    let path = format!("/dashboard/meshes/{}", mesh.slug);

    // Nobody is connected yet.
    let page = bob.get(&path).await;
    assert!(page.contains(r#"<h2 id="online-title">Online now</h2>"#));
    assert!(page.contains(r#"data-testid="online-empty">No one is connected right now.<"#));
    assert!(!page.raw_contains(r#"data-testid="member-online""#));

    // Alice connects under her own name, busy; Bob under another name.
    let alice_session = connect(
        &server,
        &mesh,
        0,
        Presence {
            display_name: "Alice".into(),
            role: "reviewer".into(),
            groups: vec!["backend".into(), "ops".into()],
            status: PeerStatus::Working,
            summary: "Fixing <the> broker & its tests".into(),
        },
    )
    .await;
    let bob_session = connect(
        &server,
        &mesh,
        1,
        Presence {
            display_name: "Bob's <laptop>".into(),
            ..Presence::default()
        },
    )
    .await;
    // A session's row is written before its welcome: no wait needed. A
    // member who is not an admin sees who is online too.
    let page = bob.get(&path).await;
    assert!(!page.raw_contains(r#"data-testid="online-empty""#));
    let item = session_item(&page, "Alice").expect("Alice's session is listed");
    assert!(
        item.contains(r#"data-testid="session-status">Working<"#),
        "{item}"
    );
    assert!(
        item.contains(r#"data-testid="session-role">reviewer<"#),
        "{item}"
    );
    assert!(item.contains(">Fixing <the> broker & its tests<"), "{item}");
    assert!(
        item.contains("<code>@backend</code> <code>@ops</code>"),
        "{item}"
    );
    assert!(
        item.contains(r#" UTC</time> <span class="muted">(just now)</span>"#),
        "{item}"
    );
    assert!(
        !item.contains("session-member"),
        "named after the member: {item}"
    );
    let item = session_item(&page, "Bob's <laptop>").expect("Bob's session is listed");
    assert!(
        item.contains(r#"data-testid="session-member">of Bob<"#),
        "{item}"
    );
    assert!(
        item.contains(r#"data-testid="session-status">Idle<"#),
        "{item}"
    );
    for absent in ["session-summary", "session-role", "session-groups"] {
        assert!(!item.contains(absent), "{absent}: {item}");
    }
    for raw in ["<the>", "& its", "<laptop>"] {
        assert!(
            !page.raw_contains(raw),
            "what sessions say is escaped: {raw}"
        );
    }
    for name in ["Alice", "Bob"] {
        let row = member_row(&page, name).unwrap();
        assert!(
            row.contains(&online_marker("One session connected")),
            "{row}"
        );
    }

    // Later, Alice opens a second session and Bob goes do-not-disturb: the
    // page follows, each member's sessions together, oldest first.
    server.clock.advance(Duration::from_secs(2 * 3600 + 60));
    let ci_session = connect(
        &server,
        &mesh,
        0,
        Presence {
            display_name: "Alice (CI)".into(),
            ..Presence::default()
        },
    )
    .await;
    bob_session.set_status(PeerStatus::Dnd).unwrap();
    bob_session.set_summary("Back after lunch").unwrap();
    let page = page_until(&bob, &path, |page| {
        session_item(page, "Bob's <laptop>").is_some_and(|item| item.contains("Back after lunch"))
    })
    .await;
    let bobs = session_item(&page, "Bob's <laptop>").unwrap();
    assert!(
        bobs.contains(r#"data-testid="session-status">Do not disturb<"#),
        "{bobs}"
    );
    assert!(bobs.contains("(2 hours ago)"), "{bobs}");
    let ci = session_item(&page, "Alice (CI)").unwrap();
    assert!(
        ci.contains(r#"data-testid="session-member">of Alice<"#),
        "{ci}"
    );
    assert!(ci.contains("(just now)"), "{ci}");
    let position = |name: &str| page.body.find(&session_item(&page, name).unwrap()).unwrap();
    assert!(position("Alice") < position("Alice (CI)"));
    assert!(position("Alice (CI)") < position("Bob's <laptop>"));
    let row = member_row(&page, "Alice").unwrap();
    assert!(
        row.contains(&online_marker("2 sessions connected")),
        "{row}"
    );

    // In Spanish.
    let spanish = alice.get(&format!("{path}?lang=es")).await;
    assert!(spanish.contains(r#"<h2 id="online-title">Conectados ahora</h2>"#));
    let bobs = session_item(&spanish, "Bob's <laptop>").unwrap();
    assert!(
        bobs.contains(r#"data-testid="session-status">No molestar<"#),
        "{bobs}"
    );
    assert!(
        bobs.contains(r#"data-testid="session-member">de Bob<"#),
        "{bobs}"
    );
    assert!(bobs.contains("(hace 2 horas)"), "{bobs}");
    let row = member_row(&spanish, "Alice").unwrap();
    assert!(
        row.contains(r#"data-testid="member-online" title="2 sesiones conectadas">en línea<"#),
        "{row}"
    );

    // Alice's first session disconnects: it is gone, she is still online.
    alice_session.close();
    drop(alice_session);
    let page = page_until(&bob, &path, |page| session_item(page, "Alice").is_none()).await;
    assert!(session_item(&page, "Alice (CI)").is_some());
    let row = member_row(&page, "Alice").unwrap();
    assert!(
        row.contains(&online_marker("One session connected")),
        "{row}"
    );

    // Everyone disconnects: nobody is online.
    ci_session.close();
    bob_session.close();
    drop((ci_session, bob_session));
    let page = page_until(&bob, &path, |page| {
        page.raw_contains(r#"data-testid="online-empty""#)
    })
    .await;
    assert!(page.contains("No one is connected right now."));
    assert!(!page.raw_contains(r#"data-testid="session""#));
    assert!(!page.raw_contains(r#"data-testid="member-online""#));
    let spanish = alice.get(&path).await;
    assert!(spanish.contains(r#"<h2 id="online-title">Conectados ahora</h2>"#));
    assert!(spanish.contains("Ahora mismo no hay nadie conectado."));
}

async fn every_member_edits_their_own_grants_on_the_mesh_page(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    // Bob's browser claims another origin: only the page's CSRF token lets
    // his form through.
    let (bob, _) = Browser::signed_in_from(&server, "Bob", Some(EVIL)).await;
    let slug = alice.create_mesh("Team").await;
    let invite = alice.api_invite(&slug, json!({})).await;
    bob.accept_on_page(invite["code"].as_str().unwrap()).await;

    // Bob (a member, not an admin) sees a row for Alice, all granted.
    let page = bob.get(&format!("/dashboard/meshes/{slug}")).await;
    assert!(page.raw_contains(r#"data-testid="grants""#));
    assert!(page.contains("Who may reach you"));
    assert!(page.raw_contains(r#"name="dm" value="on" checked"#));
    let (_, team) = bob.api_mesh(&slug).await;
    let alice_id = member_id(&team, "Alice");

    // Without a CSRF token nothing changes.
    let refused = bob
        .post(
            &format!("/dashboard/meshes/{slug}/grants"),
            &[("member", &alice_id), ("csrf", "guess"), ("group", "on")],
        )
        .await;
    assert_eq!(refused.status, 403);
    // Unticking dm (and presence): saved, and said so.
    let done = bob
        .post(
            &format!("/dashboard/meshes/{slug}/grants"),
            &[
                ("member", &alice_id),
                ("csrf", &page.csrf()),
                ("group", "on"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location(),
        format!("/dashboard/meshes/{slug}?notice=grants-saved#grants")
    );
    let after = bob
        .get(&format!("/dashboard/meshes/{slug}?notice=grants-saved"))
        .await;
    assert!(after.contains("Saved. It applies to their sessions now."));
    assert!(!after.raw_contains(r#"name="dm" value="on" checked"#));
    assert!(after.raw_contains(r#"name="group" value="on" checked"#));
    let (_, grants) = bob
        .api(
            reqwest::Method::GET,
            &format!("/api/my/meshes/{slug}/grants"),
            None,
        )
        .await;
    assert_eq!(grants["you_allow"][0]["caps"], json!(["group"]));
    assert!(server.audited("mesh.grant.changed").await);
    // In Spanish too.
    let spanish = bob.get(&format!("/dashboard/meshes/{slug}?lang=es")).await;
    assert!(spanish.contains("Quién puede contactarte"));
    assert!(spanish.contains("Mensajes directos"));
}

#[tokio::test]
async fn the_mesh_page_shows_the_latest_log_entries_in_both_languages() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    assert_eq!(alice.create_mesh("Platform team").await, "platform-team");
    let invite = alice.api_invite("platform-team", json!({})).await;
    bob.accept_on_page(invite["code"].as_str().unwrap()).await;

    let page = bob.get("/dashboard/meshes/platform-team").await;
    assert_eq!(page.status, 200);
    let kinds: Vec<&str> = page
        .body
        .match_indices(r#"data-testid="log-entry" data-kind=""#)
        .map(|(at, found)| {
            let rest = &page.body[at + found.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    // Newest first.
    assert_eq!(
        kinds,
        [
            "member.joined",
            "invite.accepted",
            "invite.created",
            "member.joined"
        ]
    );
    assert!(page.contains("Latest events") && page.contains("Joined the mesh"));
    assert!(page.contains("<code>claudemesh log tail --follow</code>"));
    let spanish = bob.get("/dashboard/meshes/platform-team?lang=es").await;
    assert!(spanish.contains("Últimos sucesos") && spanish.contains("Se unió al mesh"));
    assert!(spanish.contains("Invitación creada"));
}
