//! `members`, `mesh`, `grant`/`revoke`/`block`/`unblock`/`grants`: an admin
//! runs a team from the terminal, members decide who reaches them, and each
//! bad input is a clear message and a documented exit code.

use crate::harness::DevMesh;
use claudemesh_testkit::Engine;
use serde_json::Value;

fn member<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["display_name"] == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_a_team_of_three_from_the_terminal() {
    let DevMesh(server, _mesh, [alices, bobs, _carols]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob", "Carol"]).await;

    // list (bare `members` is list), human and JSON.
    let out = alices.cmd(["members"]).run().await.expect_code(0);
    for text in [
        "NAME",
        "Alice (you)",
        "Bob",
        "Carol",
        "admin",
        "member",
        "never",
    ] {
        assert!(out.stdout.contains(text), "{text} in {}", out.stdout);
    }
    let list = alices
        .cmd(["members", "list", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(list["mesh"], "dev");
    assert_eq!(list["members"].as_array().unwrap().len(), 3);
    assert_eq!(member(&list, "Bob")["role"], "member");

    // add: an invite by email, shown as pending.
    let out = alices
        .cmd([
            "members",
            "add",
            "dave@example.com",
            "--role",
            "admin",
            "--json",
        ])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("Invited dave@example.com to dev as admin");
    // The same words as `invite --email` for a mail that only reached the outbox.
    out.stderr_has("Not emailed: the server has no mail server set up");
    let added = out.stdout_json();
    assert_eq!(added["mesh"], "dev");
    assert_eq!(added["email"], "dave@example.com");
    assert_eq!(added["mail"], "outbox");
    let list = alices.cmd(["members", "--json"]).run().await.stdout_json();
    assert_eq!(list["pending"][0]["email"], "dave@example.com");
    assert_eq!(list["pending"][0]["invited_by"], "Alice");
    let out = alices.cmd(["members"]).run().await.expect_code(0);
    assert!(out.stdout.contains("Pending invites:") && out.stdout.contains("dave@example.com"));

    // role, by name and by id.
    alices
        .cmd(["members", "role", "Bob", "admin"])
        .says(0, "Bob is now an admin of dev")
        .await;
    let bob_id = member(&list, "Bob")["id"].as_str().unwrap().to_owned();
    let changed = alices
        .cmd(["members", "role", &bob_id, "member", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(changed["role"], "member");

    // remove: asks, so off a terminal it needs --yes.
    alices
        .cmd(["members", "remove", "Carol"])
        .says(3, "Removing Carol from dev needs a confirmation")
        .await
        .stderr_has("--yes");
    alices
        .cmd(["members", "remove", "carol", "--yes"])
        .says(0, "Removed Carol from dev")
        .await;
    let list = bobs.cmd(["members", "--json"]).run().await.stdout_json();
    assert_eq!(list["members"].as_array().unwrap().len(), 2);

    // rename, archive (twice), unarchive.
    let renamed = alices
        .cmd(["mesh", "rename", "Dev team", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(
        (&renamed["name"], &renamed["slug"]),
        (&"Dev team".into(), &"dev".into())
    );
    alices
        .cmd(["mesh", "archive"])
        .says(0, "Archived dev")
        .await;
    let again = alices
        .cmd(["mesh", "archive", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(again["archived"], true);
    let listed = bobs.cmd(["list", "--json"]).run().await.stdout_json();
    assert_eq!(listed["meshes"][0]["archived"], true);
    assert!(bobs.cmd(["list"]).run().await.stdout.contains("(archived)"));
    bobs.cmd(["peers"]).says(6, "archived").await;
    alices
        .cmd(["mesh", "unarchive"])
        .says(0, "dev is live again")
        .await;
    bobs.cmd(["peers"]).run().await.expect_code(0);

    // Each governance change is in the mesh log (archiving twice is one
    // entry), as is a grant change; the chain still verifies.
    bobs.cmd(["revoke", "Alice", "dm"])
        .run()
        .await
        .expect_code(0);
    let out = bobs
        .cmd(["log", "tail", "--json", "-n", "100"])
        .run()
        .await
        .expect_code(0);
    let entries: Vec<Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("an entry"))
        .collect();
    let count = |kind: &str| entries.iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(count("member.role_changed"), 2, "{}", out.stdout);
    for kind in [
        "mesh.renamed",
        "mesh.archived",
        "mesh.unarchived",
        "grants.changed",
    ] {
        assert_eq!(count(kind), 1, "{kind} in {}", out.stdout);
    }
    let grants = entries
        .iter()
        .find(|e| e["kind"] == "grants.changed")
        .expect("grants.changed");
    assert_eq!(grants["detail"]["display_name"], "Bob");
    assert_eq!(grants["detail"]["peer"], "Alice");
    assert_eq!(grants["detail"]["to"], "group,presence");
    let text = bobs
        .cmd(["log", "tail", "-n", "100"])
        .run()
        .await
        .expect_code(0);
    for line in [
        "Alice made Bob admin (was member)",
        "Alice renamed the mesh from \"Dev\" to \"Dev team\"",
        "Alice archived the mesh",
        "Alice unarchived the mesh",
        "Bob now allows Alice: group,presence (was dm,group,presence)",
    ] {
        assert!(text.stdout.contains(line), "{line} in {}", text.stdout);
    }
    let renamed = bobs
        .cmd(["log", "tail", "--kind", "mesh.renamed", "--json"])
        .run()
        .await
        .expect_code(0);
    assert_eq!(renamed.stdout.lines().count(), 1, "{}", renamed.stdout);
    alices.cmd(["log", "verify"]).run().await.expect_code(0);

    // delete: needs --yes off a terminal; then gone here and on the server.
    alices
        .cmd(["mesh", "delete"])
        .says(3, "Deleting dev needs a confirmation")
        .await;
    bobs.cmd(["mesh", "delete", "--yes"])
        .says(7, "Only admins of `dev` can do that")
        .await;
    let deleted = alices
        .cmd(["mesh", "delete", "--yes", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(deleted["deleted"], true);
    assert!(alices.local_meshes(&server).is_empty());
    alices
        .cmd(["members", "--mesh", "dev"])
        .says(5, "You have no mesh called `dev`")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_governance_input_is_refused_with_its_exit_code() {
    let DevMesh(_server, mesh, [alices, bobs, _bob2]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob", "Bob"]).await;

    // Unknown member (5); a name two members share (3, with both ids).
    alices
        .cmd(["members", "role", "Zed", "admin"])
        .says(5, "dev has no member called `Zed`")
        .await;
    let out = alices
        .cmd(["members", "remove", "Bob", "--yes"])
        .says(3, "2 members of dev are called `Bob`")
        .await;
    for bob in mesh.members.iter().filter(|m| m.name == "Bob") {
        out.stderr_has(&bob.member_id);
    }
    // A role or capability that does not exist (3).
    alices
        .cmd(["members", "role", "Alice", "owner"])
        .run()
        .await
        .expect_code(3);
    alices
        .cmd(["grant", "Alice", "teleport"])
        .run()
        .await
        .expect_code(3);
    // Not an admin (7); the last admin (6).
    bobs.cmd(["members", "role", "Alice", "member", "--mesh", "dev"])
        .says(7, "Only admins of `dev` can do that")
        .await;
    bobs.cmd(["members", "add", "x@example.com"])
        .run()
        .await
        .expect_code(7);
    bobs.cmd(["mesh", "rename", "Mine"])
        .run()
        .await
        .expect_code(7);
    alices
        .cmd(["members", "role", "Alice", "member"])
        .says(6, "only admin of `dev`")
        .await;
    // A mesh one is not in (5).
    alices
        .cmd(["members", "--mesh", "other-team"])
        .says(5, "You have no mesh called `other-team`")
        .await;
    // Names the server would refuse are refused before asking (3).
    alices
        .cmd(["mesh", "rename", ""])
        .says(3, "A mesh name must be 1 to 100 characters")
        .await;
    alices
        .cmd_args(&["mesh", "rename", &"x".repeat(200)])
        .says(3, "A mesh name must be 1 to 100 characters")
        .await;
    alices
        .cmd(["members", "add", "not-an-address"])
        .run()
        .await
        .expect_code(3);
    // Nothing changed.
    let list = alices.cmd(["members", "--json"]).run().await.stdout_json();
    assert_eq!(member(&list, "Alice")["role"], "admin");
    assert_eq!(list["pending"], serde_json::json!([]));
    let meshes = alices.cmd(["list", "--json"]).run().await.stdout_json();
    assert_eq!(meshes["meshes"][0]["name"], "Dev");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_blocks_another_and_their_messages_stop() {
    let DevMesh(_server, _mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;

    alices
        .cmd(["send", "Bob", "hello"])
        .run()
        .await
        .expect_code(0);
    let out = bobs
        .cmd(["revoke", "Alice", "dm", "--json"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("Revoked: Alice may now");
    assert_eq!(
        out.stdout_json()["caps"],
        serde_json::json!(["group", "presence"])
    );
    alices
        .cmd(["send", "Bob", "are you there?"])
        .says(7, "does not permit direct messages from you")
        .await;
    bobs.cmd(["grant", "Alice", "dm"])
        .run()
        .await
        .expect_code(0);
    alices
        .cmd(["send", "Bob", "again"])
        .run()
        .await
        .expect_code(0);
    bobs.cmd(["block", "alice"])
        .says(0, "Blocked: Alice may now do nothing")
        .await;
    alices
        .cmd(["send", "Bob", "blocked"])
        .run()
        .await
        .expect_code(7);

    let grants = bobs
        .cmd(["grants", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(grants["you_allow"][0]["caps"], serde_json::json!([]));
    assert_eq!(
        grants["allows_you"][0]["caps"],
        serde_json::json!(["dm", "group", "presence"])
    );
    let table = alices.cmd(["grants"]).run().await.expect_code(0).stdout;
    assert!(
        table.contains("THEY ALLOW YOU") && table.contains("(blocked)"),
        "{table}"
    );
    bobs.cmd(["unblock", "Alice"]).run().await.expect_code(0);
    alices
        .cmd(["send", "Bob", "unblocked"])
        .run()
        .await
        .expect_code(0);
    bobs.cmd(["grant", "Zed", "dm"]).run().await.expect_code(5);
    bobs.cmd(["grant", "Bob", "dm"]).run().await.expect_code(3);
}
