//! The mesh page's admin actions: a member's role, rename, archive,
//! unarchive and delete, each behind a confirmation page and a CSRF-checked
//! form, with the API's refusals shown as pages.

use super::browser::*;
use claudemesh_testkit::member_id;

on_both_engines!(
    admins_change_roles_after_a_confirmation,
    admins_rename_archive_and_delete_the_mesh_after_a_confirmation,
);

/// The `<tr>` of the members table that names `name`.
fn member_row(page: &Page, name: &str) -> String {
    let at = page
        .body
        .find(&format!("<strong>{name}</strong>"))
        .unwrap_or_else(|| panic!("no row for {name}"));
    let start = page.body[..at].rfind("<tr").unwrap();
    let end = at + page.body[at..].find("</tr>").unwrap();
    page.body[start..end].to_owned()
}

/// `name`'s role over the API.
async fn role_of(browser: &Browser, slug: &str, name: &str) -> String {
    let (status, detail) = browser.api_mesh(slug).await;
    assert_eq!(status, 200, "{detail}");
    let member = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["display_name"] == name)
        .unwrap();
    member["role"].as_str().unwrap().to_owned()
}

/// The kinds of the mesh's log entries over the API, oldest first.
async fn log_kinds(browser: &Browser, slug: &str) -> Vec<String> {
    let (status, page) = browser
        .api(
            reqwest::Method::GET,
            &format!("/api/my/meshes/{slug}/log?limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn admins_change_roles_after_a_confirmation(engine: Engine) {
    let server = TestServer::start(engine).await;
    // Alice's browser claims another origin: only the page's CSRF token
    // lets her forms through.
    let (alice, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let path = format!("/dashboard/meshes/{slug}");
    let invite = alice.api_invite(&slug, json!({})).await;
    bob.accept_on_page(invite["code"].as_str().unwrap()).await;
    let (_, detail) = alice.api_mesh(&slug).await;
    let [alice_id, bob_id] = ["Alice", "Bob"].map(|name| member_id(&detail, name));

    // The admin sees "Make admin" on Bob's row and nothing on her own (the
    // only admin keeps the role); Bob, a member, sees no such link.
    let page = alice.get(&path).await;
    assert!(member_row(&page, "Bob").contains(">Make admin</a>"));
    assert!(!member_row(&page, "Alice").contains("</a>"));
    assert!(page.raw_contains(r#"data-testid="mesh-settings""#));
    let page = bob.get(&path).await;
    assert!(!page.raw_contains(r#"data-testid="member-role""#));
    assert!(!page.raw_contains(r#"data-testid="mesh-settings""#));
    let refused = bob
        .get(&format!("{path}/members/role?id={alice_id}&role=member"))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "Only admins can do this");

    // Asking changes nothing.
    let ask = alice
        .get(&format!("{path}/members/role?id={bob_id}&role=admin"))
        .await;
    assert_eq!(ask.status, 200);
    assert_eq!(ask.title(), "Make Bob an admin?");
    assert!(ask.contains("Bob · Member → Admin"));
    assert_eq!(role_of(&alice, &slug, "Bob").await, "member");
    // A form without the page's token changes nothing either.
    for csrf in [None, Some("guess")] {
        let mut form = vec![("id", bob_id.as_str()), ("role", "admin")];
        form.extend(csrf.map(|token| ("csrf", token)));
        let refused = alice.post(&format!("{path}/members/role"), &form).await;
        assert_eq!(refused.status, 403);
        assert!(refused.contains("Request refused"));
    }
    assert_eq!(role_of(&alice, &slug, "Bob").await, "member");
    let done = alice
        .post(
            &format!("{path}/members/role"),
            &[("id", &bob_id), ("role", "admin"), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), format!("{path}?notice=role-changed"));
    let after = alice.get(done.location()).await;
    assert!(after.contains("Role changed."));
    assert!(member_row(&after, "Bob").contains("Admin"));
    assert!(member_row(&after, "Bob").contains(">Make member</a>"));
    assert_eq!(role_of(&bob, &slug, "Bob").await, "admin");
    assert!(server.audited("mesh.member.role_changed").await);
    assert!(
        bob.get(&path)
            .await
            .raw_contains(r#"data-testid="mesh-settings""#)
    );

    // Unknown roles and members are refused with a page, nothing changed.
    let csrf = ask.csrf();
    let owner = alice
        .post(
            &format!("{path}/members/role"),
            &[("id", &bob_id), ("role", "owner"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(owner.status, 400);
    assert_eq!(owner.title(), "No such role");
    let nobody = alice
        .get(&format!("{path}/members/role?id=mem_nobody&role=admin"))
        .await;
    assert_eq!(nobody.status, 404);
    assert_eq!(nobody.title(), "No such member");

    // With two admins Alice may step down; then she is a member and may not.
    let stepped = alice
        .post(
            &format!("{path}/members/role"),
            &[("id", &alice_id), ("role", "member"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(stepped.status, 303);
    assert_eq!(role_of(&alice, &slug, "Alice").await, "member");
    let refused = alice
        .post(
            &format!("{path}/members/role"),
            &[("id", &alice_id), ("role", "admin"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.title(), "Only admins can do this");

    // Bob, now the only admin, cannot step down, even by posting the form.
    let page = bob.get(&path).await;
    assert!(!member_row(&page, "Bob").contains(">Make member</a>"));
    let stuck = bob
        .post(
            &format!("{path}/members/role"),
            &[("id", &bob_id), ("role", "member"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(stuck.status, 409);
    assert_eq!(stuck.title(), "You are the only admin");
    assert!(stuck.contains("Make another member an admin first"));
    assert_eq!(role_of(&bob, &slug, "Bob").await, "admin");

    // Each change is in the mesh log (and on the page), twice.
    let kinds = log_kinds(&bob, &slug).await;
    let changes = kinds.iter().filter(|k| *k == "member.role_changed");
    assert_eq!(changes.count(), 2, "{kinds:?}");
    assert!(page.contains("Role changed"));

    // In Spanish.
    let spanish = bob
        .get(&format!(
            "{path}/members/role?id={alice_id}&role=admin&lang=es"
        ))
        .await;
    assert_eq!(spanish.title(), "¿Hacer administrador a Alice?");
    assert!(spanish.contains("Miembro → Administrador"));
}

async fn admins_rename_archive_and_delete_the_mesh_after_a_confirmation(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;
    let (bob, _) = Browser::signed_in(&server, "Bob").await;
    let slug = alice.create_mesh("Team").await;
    let path = format!("/dashboard/meshes/{slug}");
    let invite = alice.api_invite(&slug, json!({})).await;
    bob.accept_on_page(invite["code"].as_str().unwrap()).await;
    let name_of = |detail: &Value| detail["name"].as_str().unwrap().to_owned();

    // A member may do none of it.
    let bob_page = bob.get(&path).await;
    for action in ["rename?name=Mine", "archive", "unarchive", "delete"] {
        let refused = bob.get(&format!("{path}/{action}")).await;
        assert_eq!(refused.status, 403, "{action}");
        assert_eq!(refused.title(), "Only admins can do this");
    }
    let refused = bob
        .post(&format!("{path}/archive"), &[("csrf", &bob_page.csrf())])
        .await;
    assert_eq!(refused.status, 403);
    assert!(alice.api_mesh(&slug).await.1["archived_at"].is_null());

    // Rename: names that cannot be are refused on the way in and out.
    let page = alice.get(&path).await;
    let csrf = page.csrf();
    let long = "x".repeat(101);
    for bad in ["%20%20", "", long.as_str()] {
        let refused = alice.get(&format!("{path}/rename?name={bad}")).await;
        assert_eq!(refused.status, 400, "{bad:?}");
        assert_eq!(refused.title(), "That name cannot be used");
        assert!(refused.contains("1 to 100 characters"));
    }
    let refused = alice
        .post(&format!("{path}/rename"), &[("name", " "), ("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.title(), "That name cannot be used");
    let ask = alice
        .get(&format!("{path}/rename?name=Platform%20team"))
        .await;
    assert_eq!(ask.status, 200);
    assert_eq!(ask.title(), "Rename Team?");
    assert!(ask.contains("Team → Platform team"));
    let refused = alice
        .post(
            &format!("{path}/rename"),
            &[("name", "Platform team"), ("csrf", "guess")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(name_of(&alice.api_mesh(&slug).await.1), "Team");
    let done = alice
        .post(
            &format!("{path}/rename"),
            &[("name", "Platform team"), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), format!("{path}?notice=renamed"));
    let after = bob.get(&path).await;
    assert_eq!(after.title(), "Platform team");
    assert_eq!(name_of(&bob.api_mesh(&slug).await.1), "Platform team");

    // Archive, twice (the second changes nothing), then unarchive.
    let ask = alice.get(&format!("{path}/archive")).await;
    assert_eq!(ask.title(), "Archive Platform team?");
    assert!(alice.api_mesh(&slug).await.1["archived_at"].is_null());
    for _ in 0..2 {
        let done = alice
            .post(&format!("{path}/archive"), &[("csrf", &ask.csrf())])
            .await;
        assert_eq!(done.status, 303);
        assert_eq!(done.location(), format!("{path}?notice=archived"));
    }
    let archived = alice.get(&format!("{path}?notice=archived")).await;
    assert!(archived.contains("Mesh archived."));
    assert!(archived.raw_contains(r#"data-testid="mesh-archived""#));
    assert!(archived.raw_contains(r#"data-testid="mesh-unarchive""#));
    assert!(!alice.api_mesh(&slug).await.1["archived_at"].is_null());
    let ask = alice.get(&format!("{path}/unarchive")).await;
    assert_eq!(ask.title(), "Unarchive Platform team?");
    let done = alice
        .post(&format!("{path}/unarchive"), &[("csrf", &ask.csrf())])
        .await;
    assert_eq!(done.location(), format!("{path}?notice=unarchived"));
    let live = alice.get(done.location()).await;
    assert!(live.contains("Mesh unarchived."));
    assert!(live.raw_contains(r#"data-testid="mesh-archive""#));
    assert!(alice.api_mesh(&slug).await.1["archived_at"].is_null());

    // The log has each change once (archiving twice is one entry).
    let kinds = log_kinds(&bob, &slug).await;
    for kind in ["mesh.renamed", "mesh.archived", "mesh.unarchived"] {
        let count = kinds.iter().filter(|k| *k == kind).count();
        assert_eq!(count, 1, "{kind} in {kinds:?}");
    }
    assert!(live.contains("Mesh renamed") && live.contains("Mesh archived"));
    let spanish = alice.get(&format!("{path}?lang=es")).await;
    assert!(spanish.contains("Ajustes del mesh") && spanish.contains("Mesh renombrado"));
    // (The language sticks, as a cookie: back to English.)
    alice.get(&format!("{path}?lang=en")).await;

    // Delete: the slug must be typed; then it is gone for everyone.
    let ask = alice.get(&format!("{path}/delete")).await;
    assert_eq!(ask.status, 200);
    assert_eq!(ask.title(), "Delete Platform team for good?");
    assert!(ask.raw_contains(&format!("<code>{slug}</code>")));
    let wrong = alice
        .post(
            &format!("{path}/delete"),
            &[("confirm_slug", "platform"), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.contains("That is not this mesh's slug. Nothing was deleted."));
    let refused = alice
        .post(
            &format!("{path}/delete"),
            &[("confirm_slug", &slug), ("csrf", "guess")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(alice.api_mesh(&slug).await.0, 200);
    let gone = alice
        .post(
            &format!("{path}/delete"),
            &[("confirm_slug", &slug), ("csrf", &ask.csrf())],
        )
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(gone.location(), "/dashboard?notice=deleted");
    assert!(alice.get(gone.location()).await.contains("Mesh deleted."));
    assert!(server.audited("mesh.deleted").await);
    assert_eq!(alice.api_mesh(&slug).await.0, 404);
    assert_eq!(bob.get(&path).await.status, 404);
    // Its slug can be used again.
    assert_eq!(alice.create_mesh("Team").await, slug);
}
