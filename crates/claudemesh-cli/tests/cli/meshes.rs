//! The mesh commands (`create`, `list`, `sync`, `invite`, `join`) of the real
//! binary against the real server, each "machine" a CLI with its own
//! config directory. What is checked is what a user notices: the lines
//! printed, the exit codes, `config.json` and its mode, and what the server
//! then says over plain HTTP.

use crate::harness::*;
use claudemesh_testkit::{Options, SmtpSink};
use data_encoding::HEXLOWER;

// ------------------------------------------------------------------ helpers

/// A server whose mail goes to `sink`.
async fn mail_server(engine: Engine, sink: &SmtpSink) -> TestServer {
    TestServer::start_with(
        engine,
        Options {
            running_clock: true,
            smtp_url: Some(sink.url()),
            ..Options::default()
        },
    )
    .await
}

/// `GET path` from the user's signed-in browser: the JSON of a 200.
async fn get_json(user: &TestUser, path: &str) -> Value {
    let response = user
        .browser
        .get(user.url(path))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON body")
}

/// The public key an ed25519 secret key (hex) belongs to.
fn public_key_of(secret_hex: &str) -> String {
    let bytes: [u8; 32] = HEXLOWER
        .decode(secret_hex.as_bytes())
        .expect("hex secret")
        .try_into()
        .expect("32 bytes");
    let signing = ed25519_dalek::SigningKey::from_bytes(&bytes);
    HEXLOWER.encode(signing.verifying_key().as_bytes())
}

/// The keys the server lists for the caller's own membership of `slug`.
async fn my_keys(user: &TestUser, slug: &str) -> Vec<String> {
    let detail = get_json(user, &format!("/api/my/meshes/{slug}")).await;
    let me = detail["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["you"] == true)
        .expect("the caller is a member")
        .clone();
    me["public_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("a key").to_owned())
        .collect()
}

async fn member_count(user: &TestUser, slug: &str) -> usize {
    get_json(user, &format!("/api/my/meshes/{slug}")).await["members"]
        .as_array()
        .expect("members")
        .len()
}

/// `claudemesh list --json` on `cli`: the entry for `slug`.
async fn listed(cli: &Cli, slug: &str) -> Value {
    let json = cli
        .cmd(["list", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    json["meshes"]
        .as_array()
        .expect("meshes")
        .iter()
        .find(|m| m["slug"] == slug)
        .cloned()
        .unwrap_or_else(|| panic!("{slug} is not listed: {json}"))
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

// ------------------------------------------------------------------ create

async fn create_joins_locally_and_the_server_has_it(engine: Engine) {
    let server = server(engine).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;

    let out = cli
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);
    assert_eq!(out.stdout, "", "messages only, on stderr");
    let remote = get_json(&alice, "/api/my/meshes").await;
    let mesh = &remote["meshes"][0];
    assert_eq!(mesh["slug"], "platform-team");
    assert_eq!(mesh["name"], "Platform team");
    assert_eq!(mesh["role"], "admin");
    let id = mesh["id"].as_str().expect("an id");
    let short = format!("msh_{}…", &id["msh_".len().."msh_".len() + 8]);
    assert_eq!(
        lines(&out.stderr),
        [
            format!("✔ Created mesh platform-team (id: {short})").as_str(),
            "✔ Joined locally",
            "▸ Invite peers: claudemesh invite --mesh platform-team",
        ]
    );

    // config.json: private, with this machine's key pair for the membership.
    assert_eq!(mode(&cli.config_path()), 0o600);
    assert_eq!(mode(&cli.config_dir), 0o700);
    let config = cli.config_json();
    assert_eq!(config["version"], 1);
    let local = cli.local_mesh(&server, "platform-team");
    assert_eq!(local["mesh_id"], id);
    assert_eq!(local["name"], "Platform team");
    assert_eq!(local["role"], "admin");
    assert_eq!(local["user_id"], alice.user.id.as_str());
    assert_eq!(local["member_id"], mesh["member_id"]);
    assert_eq!(local["display_name"], "Alice");
    assert!(local["joined_at"].as_str().is_some());
    let secret = local["secret_key"].as_str().expect("a secret key");
    let public = local["public_key"].as_str().expect("a public key");
    assert_eq!(public_key_of(secret), public);
    assert_eq!(my_keys(&alice, "platform-team").await, [public]);
    out.never_shows(secret);

    // list: joined here, as admin, one member.
    let list = cli.cmd(["list"]).run().await.expect_code(0);
    assert_eq!(
        list.stdout,
        "\
MESH           NAME           ROLE   MEMBERS  ON THIS MACHINE
platform-team  Platform team  admin  1        joined here
"
    );
    list.never_shows(secret);
    let entry = listed(&cli, "platform-team").await;
    assert_eq!(entry["here"], "joined_here");
    assert_eq!(entry["members"], 1);
    assert_eq!(entry["role"], "admin");
    assert_eq!(entry["id"], id);
    assert_eq!(entry["public_key"], public);
    assert!(entry.get("secret_key").is_none());

    // --json: one document a script can take the id from; slug and display name given.
    let out = cli
        .cmd([
            "create",
            "CI test mesh",
            "--slug",
            "ci-42",
            "--name",
            "Alice (CI)",
            "--json",
        ])
        .run()
        .await
        .expect_code(0);
    let json = out.stdout_json();
    assert_eq!(json["slug"], "ci-42");
    assert_eq!(json["display_name"], "Alice (CI)");
    assert_eq!(json["member_count"], 1);
    assert!(json["id"].as_str().is_some_and(|id| id.starts_with("msh_")));
    assert_eq!(
        json["public_key"],
        cli.local_mesh(&server, "ci-42")["public_key"]
    );
    assert!(json.get("secret_key").is_none());
    assert_eq!(cli.local_meshes(&server).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_slug_suggests_a_free_one_with_the_conflict_code() {
    let server = server(Engine::Sqlite).await;
    let [(_alice, alices), (bob, bobs)] = on_machines(&server, ["Alice", "Bob"]).await;
    alices
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);

    let out = bobs
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(6);
    assert_eq!(
        out.stderr,
        "✘ The slug `platform-team` is taken\n\
         Try --slug platform-team-2: claudemesh create 'Platform team' --slug platform-team-2\n"
    );
    assert_eq!(out.stdout, "");
    assert!(
        bobs.local_meshes(&server).is_empty(),
        "nothing recorded for a refused mesh"
    );
    assert_eq!(
        get_json(&bob, "/api/my/meshes").await["meshes"],
        serde_json::json!([])
    );

    // The suggestion works.
    bobs.cmd(["create", "Platform team", "--slug", "platform-team-2"])
        .says(0, "✔ Created mesh platform-team-2 (id: ")
        .await;
    // A malformed slug never reaches the server.
    bobs.cmd(["create", "X", "--slug", "Not A Slug"])
        .says(3, "✘ Invalid --slug \"Not A Slug\"")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_commands_need_a_login_and_a_sound_config_file() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let nobody = Cli::for_server(&server);
    for args in [
        vec!["create", "Platform team"],
        vec!["list"],
        vec!["sync"],
        vec!["invite", "--mesh", "dev"],
        vec!["join", "abc123"],
    ] {
        let mut cmd = nobody.cmd([]);
        cmd.command.args(&args);
        cmd.says(2, "✘ Not logged in\n").await;
    }

    // A damaged config.json is an error naming it, and nothing is created.
    let cli = machine(&server, &alice).await;
    std::fs::write(cli.config_path(), "{\"version\": 1, \"servers\": tru").expect("write");
    std::fs::set_permissions(cli.config_path(), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    for args in [vec!["create", "Platform team"], vec!["list"], vec!["sync"]] {
        let mut cmd = cli.cmd([]);
        cmd.command.args(&args);
        cmd.says(
            1,
            &format!("✘ Config file corrupted: {} (", cli.config_path().display()),
        )
        .await;
    }
    assert_eq!(
        get_json(&alice, "/api/my/meshes").await["meshes"],
        serde_json::json!([])
    );

    // A too-open one is fixed, with a warning.
    std::fs::remove_file(cli.config_path()).expect("remove");
    cli.cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);
    std::fs::set_permissions(cli.config_path(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    cli.cmd(["list"])
        .says(
            0,
            &format!(
                "⚠ {} was readable by others (mode 644); fixed it to 600",
                cli.config_path().display()
            ),
        )
        .await;
    assert_eq!(mode(&cli.config_path()), 0o600);
}

// ------------------------------------------------------- invite and join

async fn an_emailed_invite_lets_another_account_join(engine: Engine) {
    let sink = SmtpSink::start().await;
    let server = mail_server(engine, &sink).await;
    let [(alice, alices), (bob, bobs)] = on_machines(&server, ["Alice", "Bob"]).await;
    alices
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);

    // One mesh joined here: --mesh may be left out.
    let out = alices
        .cmd(["invite", "--email", &bob.email])
        .run()
        .await
        .expect_code(0);
    let link = out.stdout.trim_end().to_owned();
    assert_eq!(out.stdout, format!("{link}\n"), "only the link on stdout");
    assert!(
        link.starts_with(&format!("{}/i/", server.base_url)),
        "{link}"
    );
    out.stderr_has("✔ Invite to platform-team created: member, 1 use, expires in 7 days (")
        .stderr_has(&format!("✔ Emailed {}\n", bob.email));
    let mail = sink
        .wait_for_where(1, |mail| mail.subject().contains("invited you"))
        .await;
    assert_eq!(mail[0].to, [bob.email.as_str()]);
    assert!(mail[0].body().contains(&link), "{}", mail[0].body());
    assert!(
        mail[0].subject().contains("Platform team"),
        "{}",
        mail[0].subject()
    );

    let out = bobs
        .cmd(["join", &link, "--name", "Bob (desktop)"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("Invite to Platform team (platform-team) from Alice\n")
        .stderr_has("  Role:     member\n")
        .stderr_has("  Expires:  in ")
        .stderr_has("✔ Joined Platform team (platform-team) as member\n");
    assert_eq!(out.stdout, "");
    let local = bobs.local_mesh(&server, "platform-team");
    assert_eq!(local["role"], "member");
    assert_eq!(local["display_name"], "Bob (desktop)");
    assert_eq!(mode(&bobs.config_path()), 0o600);
    let secret = local["secret_key"].as_str().expect("secret");
    assert_eq!(
        my_keys(&bob, "platform-team").await,
        [public_key_of(secret)]
    );
    out.never_shows(secret);

    // Both see two members, in the CLI and over HTTP.
    for cli in [&alices, &bobs] {
        let entry = listed(cli, "platform-team").await;
        assert_eq!(entry["members"], 2);
        assert_eq!(entry["here"], "joined_here");
    }
    assert_eq!(member_count(&alice, "platform-team").await, 2);
    assert_eq!(member_count(&bob, "platform-team").await, 2);

    // Joining again is a friendly no-op that uses nothing up.
    bobs.cmd(["join", &link])
        .says(
            0,
            "✔ Already joined Platform team (platform-team) on this machine, as member\n",
        )
        .await;
    let invites = get_json(&alice, "/api/my/meshes/platform-team/invites").await;
    assert_eq!(invites["invites"][0]["uses"], 1);
    assert_eq!(bobs.local_meshes(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_without_mesh_needs_exactly_one_mesh_joined_here() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = machine(&server, &alice).await;

    let out = cli.cmd(["invite"]).run().await.expect_code(3);
    out.stderr_has("✘ Which mesh? No mesh is joined on this machine\n");
    assert_eq!(out.stdout, "");

    cli.cmd(["create", "Dev"]).run().await.expect_code(0);
    let link = invite_link(&cli, ["invite"]).await;
    assert!(link.starts_with(&server.base_url));

    cli.cmd(["create", "Ops"]).run().await.expect_code(0);
    let out = cli.cmd(["invite"]).run().await.expect_code(3);
    assert_eq!(
        out.stderr,
        "✘ Which mesh? This machine has joined 2: dev, ops\n\
         Give one with --mesh, e.g. `claudemesh invite --mesh dev`.\n"
    );
    assert_eq!(out.stdout, "");
    let json = cli
        .cmd([
            "invite",
            "--mesh",
            "ops",
            "--role",
            "admin",
            "--expires-in",
            "2w",
            "--max-uses",
            "5",
            "--json",
        ])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["mesh"], "ops");
    assert_eq!(json["role"], "admin");
    assert_eq!(json["max_uses"], 5);
    assert_eq!(json["emailed"], false);
    let created: claudemesh_api::wire::CreatedInvite =
        serde_json::from_value(json.clone()).expect("an invite");
    let lifetime = time::OffsetDateTime::parse(
        &created.invite.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("expiry")
        - time::OffsetDateTime::parse(
            &created.invite.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .expect("creation");
    assert_eq!(lifetime.whole_days(), 14);

    // Usage errors never reach the server.
    cli.cmd(["invite", "--mesh", "ops", "--expires-in", "24h"])
        .says(3, "expected days or weeks, like 7d or 2w (1d to 365d)")
        .await;
    cli.cmd(["invite", "--mesh", "ops", "--max-uses", "0"])
        .run()
        .await
        .expect_code(3);
    // A mesh the account is not in is not found.
    cli.cmd(["invite", "--mesh", "nope"])
        .says(5, "✘ You have no mesh called `nope`\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_can_invite() {
    let DevMesh(_server, _mesh, [_alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;

    let out = bobs.cmd(["invite"]).run().await.expect_code(7);
    assert_eq!(out.stderr, "✘ Only admins of `dev` can do that\n");
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_mail_server_still_prints_the_link_with_a_warning() {
    let sink = SmtpSink::start_refusing().await;
    let server = mail_server(Engine::Sqlite, &sink).await;
    let alice = server.register("Alice").await;
    let bob = server.register("Bob").await;
    let alices = machine(&server, &alice).await;
    alices.cmd(["create", "Dev"]).run().await.expect_code(0);

    let out = alices
        .cmd(["invite", "--email", "carol@example.com"])
        .run()
        .await
        .expect_code(0);
    let link = out.stdout.trim_end().to_owned();
    assert!(
        link.starts_with(&format!("{}/i/", server.base_url)),
        "{}",
        out.stdout
    );
    out.stderr_has("⚠ Could not email carol@example.com: ")
        .stderr_has(" — share the link yourself\n");
    assert!(!out.stderr.contains("✔ Emailed"), "{}", out.stderr);

    // The link works all the same.
    let bobs = machine(&server, &bob).await;
    bobs.cmd(["join", &link])
        .says(0, "✔ Joined Dev (dev) as member\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_invites_are_refused_with_the_reason() {
    let server = server(Engine::Sqlite).await;
    let [(alice, alices), (_bob, bobs), (_carol, carols)] =
        on_machines(&server, ["Alice", "Bob", "Carol"]).await;
    alices.cmd(["create", "Dev"]).run().await.expect_code(0);

    // Used up: one use, taken by Bob.
    let link = invite_link(&alices, ["invite"]).await;
    bobs.cmd(["join", &link]).run().await.expect_code(0);
    let out = carols.cmd(["join", &link]).run().await.expect_code(1);
    out.stderr_has("✘ This invite has been used up\nAsk Alice for a new invite to dev.\n");

    // Revoked.
    let json = alices
        .cmd(["invite", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    let revoked = alice
        .browser
        .delete(alice.url(&format!(
            "/api/my/meshes/dev/invites/{}",
            json["id"].as_str().expect("an id")
        )))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let code = json["code"].as_str().expect("a code");
    carols
        .cmd(["join", code])
        .says(1, "✘ This invite was revoked\n")
        .await;

    // Expired: eight days pass on the server.
    let link = invite_link(&alices, ["invite"]).await;
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let out = carols.cmd(["join", &link]).run().await.expect_code(1);
    out.stderr_has("Invite to Dev (dev) from Alice\n")
        .stderr_has("  Expired:  ")
        .stderr_has("✘ This invite expired ")
        .stderr_has("Ask Alice for a new invite to dev.\n");
    assert!(!out.stderr.contains("expired in "), "{}", out.stderr);
    assert!(carols.local_meshes(&server).is_empty());
    assert_eq!(listed(&alices, "dev").await["members"], 2);

    // Not an invite at all, or one nobody made.
    carols
        .cmd(["join", "not a code!"])
        .says(3, "✘ That is not an invite link or code\n")
        .await;
    let out = carols
        .cmd(["join", "https://elsewhere.example/i/abcdefgh"])
        .run()
        .await
        .expect_code(5);
    out.stderr_has("✘ No invite has this code; check the link\n")
        .stderr_has(&format!(
            "The link is for https://elsewhere.example, but you are signed in to {}.\n",
            server.base_url
        ));
}

// ------------------------------------------------------------------- sync

async fn sync_on_a_second_machine_registers_a_second_key(engine: Engine) {
    let server = server(engine).await;
    let alice = server.register("Alice").await;
    let laptop = machine(&server, &alice).await;
    // The desktop logs in before the mesh exists, so its login syncs nothing.
    let desktop = machine(&server, &alice).await;
    laptop
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);
    assert_eq!(
        listed(&desktop, "platform-team").await["here"],
        "not_joined_here"
    );
    desktop
        .cmd(["list"])
        .says(
            0,
            "Run `claudemesh sync` to join the others on this machine.",
        )
        .await;

    let out = desktop.cmd(["sync"]).run().await.expect_code(0);
    assert_eq!(
        out.stderr,
        "+ platform-team (new key registered)\n✔ Synced 1 mesh: platform-team\n"
    );
    assert_eq!(out.stdout, "");
    let on_laptop = laptop.local_mesh(&server, "platform-team");
    let on_desktop = desktop.local_mesh(&server, "platform-team");
    assert_eq!(on_desktop["mesh_id"], on_laptop["mesh_id"]);
    assert_eq!(on_desktop["member_id"], on_laptop["member_id"]);
    assert_eq!(on_desktop["role"], "admin");
    assert_ne!(on_desktop["public_key"], on_laptop["public_key"]);
    assert_eq!(
        public_key_of(on_desktop["secret_key"].as_str().expect("secret")),
        on_desktop["public_key"].as_str().expect("public")
    );
    let mut keys = my_keys(&alice, "platform-team").await;
    keys.sort();
    let mut expected = vec![
        on_laptop["public_key"].as_str().expect("key").to_owned(),
        on_desktop["public_key"].as_str().expect("key").to_owned(),
    ];
    expected.sort();
    assert_eq!(keys, expected, "one key per machine");
    assert_eq!(
        listed(&desktop, "platform-team").await["here"],
        "joined_here"
    );

    // Idempotent: nothing changes the second time, not even the file.
    let before = std::fs::read(desktop.config_path()).expect("config");
    let out = desktop.cmd(["sync"]).run().await.expect_code(0);
    assert_eq!(out.stderr, "✔ Everything in sync (1 mesh: platform-team)\n");
    assert_eq!(
        std::fs::read(desktop.config_path()).expect("config"),
        before
    );
    assert_eq!(my_keys(&alice, "platform-team").await.len(), 2);
    let json = desktop
        .cmd(["sync", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["added"], serde_json::json!([]));
    assert_eq!(json["meshes"], serde_json::json!(["platform-team"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_syncs_the_accounts_meshes() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let laptop = machine(&server, &alice).await;
    for name in ["Dev", "Ops"] {
        laptop.cmd(["create", name]).run().await.expect_code(0);
    }

    let desktop = Cli::for_server(&server);
    let out = device_login(&desktop, &alice, "desktop")
        .await
        .expect_code(0);
    out.stderr_has(
        "+ dev (new key registered)\n+ ops (new key registered)\n✔ Synced 2 meshes: dev, ops\n",
    );
    assert_eq!(desktop.local_meshes(&server).len(), 2);
    assert_eq!(my_keys(&alice, "dev").await.len(), 2);

    // A PAT login syncs too, and reports the meshes already in place.
    let pat = alice.create_pat("again", None).await;
    let out = desktop
        .cmd(["login", "--with-token", "--json"])
        .stdin(&pat.token)
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Synced 2 meshes: dev, ops\n");
    assert!(!out.stderr.contains("+ "), "{}", out.stderr);
    assert_eq!(
        out.stdout_json()["synced_meshes"],
        serde_json::json!(["dev", "ops"])
    );
    assert_eq!(my_keys(&alice, "dev").await.len(), 2);

    // No meshes: nothing scary.
    let bob = server.register("Bob").await;
    let fresh = Cli::for_server(&server);
    let pat = bob.create_pat("ci", None).await;
    let out = fresh
        .cmd(["login", "--with-token"])
        .stdin(&pat.token)
        .run()
        .await
        .expect_code(0);
    assert!(
        out.stderr.ends_with("✔ Synced 0 meshes\n"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('⚠'), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_the_account_left_is_flagged_not_deleted() {
    let server = server(Engine::Sqlite).await;
    let [(alice, alices), (_bob, bobs)] = on_machines(&server, ["Alice", "Bob"]).await;
    for name in ["Dev", "Old mesh"] {
        alices.cmd(["create", name]).run().await.expect_code(0);
        let link = invite_link(&alices, ["invite", "--mesh", &slug_of(name)]).await;
        bobs.cmd(["join", &link]).run().await.expect_code(0);
    }
    let member_id = bobs.local_mesh(&server, "old-mesh")["member_id"]
        .as_str()
        .expect("member id")
        .to_owned();
    assert_eq!(alice.remove_member("old-mesh", &member_id).await.0, 200);

    let out = bobs.cmd(["sync"]).run().await.expect_code(0);
    assert_eq!(
        lines(&out.stderr),
        [
            "! old-mesh: no longer a member on the server",
            "`claudemesh sync --prune` removes them from this machine, with their keys.",
            "✔ Synced 1 mesh: dev",
        ]
    );
    let kept = bobs.local_mesh(&server, "old-mesh");
    assert!(kept["secret_key"].as_str().is_some(), "the key is kept");
    assert!(kept["missing_on_server_since"].as_str().is_some());
    assert_eq!(listed(&bobs, "old-mesh").await["here"], "local_only");
    let list = bobs.cmd(["list"]).run().await.expect_code(0);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("old-mesh") && l.ends_with("local only")),
        "{}",
        list.stdout
    );

    // Still flagged the next time, but nothing changes.
    let before = std::fs::read(bobs.config_path()).expect("config");
    let out = bobs.cmd(["sync"]).run().await.expect_code(0);
    out.stderr_has("! old-mesh: no longer a member on the server\n")
        .stderr_has("✔ Nothing changed (1 mesh in sync)\n");
    assert_eq!(std::fs::read(bobs.config_path()).expect("config"), before);
    // A flagged mesh does not count as joined here: `invite` picks dev
    // (where Bob is no admin).
    bobs.cmd(["invite"])
        .says(
            7,
            "✘ Only admins of `dev` can do that
",
        )
        .await;

    // A promotion on the server shows up as a change.
    sqlx::query("UPDATE mesh_members SET role = 'admin' WHERE id = $1")
        .bind(
            bobs.local_mesh(&server, "dev")["member_id"]
                .as_str()
                .expect("member id"),
        )
        .execute(server.state().pool())
        .await
        .expect("promote");
    let out = bobs.cmd(["sync", "--prune"]).run().await.expect_code(0);
    assert_eq!(
        lines(&out.stderr),
        [
            "~ dev (role is now admin)",
            "- old-mesh: removed from this machine, with its key",
            "✔ Synced 1 mesh: dev",
        ]
    );
    assert_eq!(bobs.local_meshes(&server).len(), 1);
    assert_eq!(bobs.local_mesh(&server, "dev")["role"], "admin");
    bobs.cmd(["sync"])
        .says(0, "✔ Everything in sync (1 mesh: dev)\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_again_after_leaving_registers_a_key_for_the_new_membership() {
    let DevMesh(server, mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;
    let old = bobs.local_mesh(&server, "dev");
    mesh.remove("Bob").await;

    // The old record is no membership any more: this is a real join.
    let link = invite_link(&alices, ["invite"]).await;
    let out = bobs.cmd(["join", &link]).run().await.expect_code(0);
    out.stderr_has("✔ Joined Dev (dev) as member\n");
    assert!(!out.stderr.contains("Already joined"), "{}", out.stderr);
    let new = bobs.local_mesh(&server, "dev");
    assert_ne!(new["member_id"], old["member_id"]);
    assert_eq!(
        bobs.local_meshes(&server).len(),
        1,
        "the record is replaced"
    );
    assert_eq!(
        my_keys(&mesh.member("Bob").user, "dev").await,
        [new["public_key"].as_str().expect("key")]
    );
    bobs.cmd(["sync"])
        .says(0, "✔ Everything in sync (1 mesh: dev)\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_ends_the_membership_and_deletes_the_key_here() {
    let DevMesh(server, mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;
    let alice = mesh.admin().user.clone();

    // No terminal to ask in: refused without --yes, nothing changes.
    bobs.cmd(["leave", "dev"])
        .says(3, "Leaving dev needs a confirmation")
        .await
        .stderr_has("claudemesh leave dev --yes");
    assert_eq!(member_count(&alice, "dev").await, 2);

    let out = bobs
        .cmd(["leave", "dev", "--yes", "--json"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Left mesh dev\n")
        .stderr_has("Removed it from this machine, with its key.\n");
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        report,
        serde_json::json!({ "mesh": "dev", "left_on_server": true, "removed_here": true })
    );
    assert!(bobs.local_meshes(&server).is_empty());
    assert_eq!(member_count(&alice, "dev").await, 1);
    bobs.cmd(["leave", "dev", "--yes"])
        .says(5, "You have no mesh called `dev`")
        .await;

    // The only admin cannot leave; the record stays.
    alices
        .cmd(["leave", "dev", "--yes"])
        .says(6, "the only admin of `dev`")
        .await;
    assert_eq!(alices.local_meshes(&server).len(), 1);

    // Removed by an admin meanwhile: leave still cleans this machine up.
    let link = invite_link(&alices, ["invite"]).await;
    bobs.cmd(["join", &link]).run().await.expect_code(0);
    let member_id = bobs.local_mesh(&server, "dev")["member_id"]
        .as_str()
        .expect("member id")
        .to_owned();
    assert_eq!(alice.remove_member("dev", &member_id).await.0, 200);
    bobs.cmd(["leave", "dev", "-y"])
        .says(0, "You were no longer a member of dev on the server")
        .await
        .stderr_has("Removed it from this machine, with its key.");
    assert!(bobs.local_meshes(&server).is_empty());
}

fn slug_of(name: &str) -> String {
    name.to_lowercase().replace(' ', "-")
}

// ------------------------------------------------------- the spec's goal

/// The spec's goal block, end to end: a fresh terminal logs in with the
/// browser, creates a mesh, invites by email; the invitee joins with the
/// link from the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_goal_login_create_invite_by_email_join() {
    let sink = SmtpSink::start().await;
    let server = mail_server(Engine::Sqlite, &sink).await;
    let alejandro = server.register("Alejandro").await;
    let alice = server.register("Alice").await;

    // claudemesh login (device code, approved in the browser)
    let terminal = Cli::for_server(&server);
    let out = device_login(&terminal, &alejandro, "laptop")
        .await
        .expect_code(0);
    out.stderr_has("✔ Authenticated as Alejandro\n")
        .stderr_has("✔ Synced 0 meshes\n");

    // claudemesh create "Platform team"
    let out = terminal
        .cmd(["create", "Platform team"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Created mesh platform-team (id: msh_")
        .stderr_has("✔ Joined locally\n")
        .stderr_has("▸ Invite peers: claudemesh invite --mesh platform-team\n");

    // claudemesh invite --email alice@…
    let out = terminal
        .cmd(["invite", "--email", &alice.email])
        .run()
        .await
        .expect_code(0);
    out.stderr_has(&format!("✔ Emailed {}\n", alice.email));
    let mail = sink
        .wait_for_where(1, |mail| mail.subject().contains("invited you"))
        .await;
    assert_eq!(mail[0].to, [alice.email.as_str()]);
    let body = mail[0].body();
    let link = body
        .split_whitespace()
        .find(|word| word.starts_with(&format!("{}/i/", server.base_url)))
        .unwrap_or_else(|| panic!("no invite link in the mail:\n{body}"))
        .trim_end_matches(['.', ',', ')'])
        .to_owned();
    assert_eq!(out.stdout, format!("{link}\n"));

    // On Alice's machine: claudemesh join <link from the mail>
    let alices = machine(&server, &alice).await;
    alices
        .cmd(["join", &link])
        .says(
            0,
            "Invite to Platform team (platform-team) from Alejandro\n",
        )
        .await
        .stderr_has("✔ Joined Platform team (platform-team) as member\n");
    assert_eq!(listed(&terminal, "platform-team").await["members"], 2);
    assert_eq!(listed(&alices, "platform-team").await["members"], 2);
    assert_eq!(member_count(&alejandro, "platform-team").await, 2);
}

// ---------------------------------------------------------------- engines

on_both_engines!(
    create_joins_locally_and_the_server_has_it,
    an_emailed_invite_lets_another_account_join,
    sync_on_a_second_machine_registers_a_second_key
);
