//! The broker commands (`peers`, `send`, `inbox`) of the real binary
//! against the real server's broker: Alice and Bob in the mesh `dev`, each
//! on a machine (config directory) of their own. `inbox --follow` runs as a
//! child process whose stdout and stderr are read line by line as they
//! come; every wait is for a line the CLI prints, bounded by the safety
//! limit, never a fixed sleep.

use crate::harness::*;

// ------------------------------------------------ send, inbox, peers, follow

async fn messages_wait_for_the_offline_and_reach_a_follower(engine: Engine) {
    let DevMesh(_server, mesh, [alices, bobs]) = DevMesh::start(engine, ["Alice", "Bob"]).await;
    let alice_id = &mesh.member("Alice").member_id;
    let bob_id = &mesh.member("Bob").member_id;

    // Alice has no session: the message is sealed for her machine and waits.
    let out = bobs
        .cmd(["send", "Alice", "while you were out", "--json"])
        .run()
        .await
        .expect_code(0);
    out.stderr_has("✔ Sent to Alice (sealed for 1 machine)\n")
        .stderr_has("Alice has no session connected: the message waits for them (up to 7 days).\n");
    let sent = out.stdout_json();
    let first_id = sent["id"].as_str().expect("an id").to_owned();
    assert!(first_id.starts_with("msg_"), "{sent}");
    assert_eq!(sent["recipients"], 1);
    assert_eq!(sent["kind"], "direct");
    assert_eq!(sent["waits"], true);

    // Her inbox prints it, decrypted, and acknowledges it.
    let out = alices.cmd(["inbox"]).run().await.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].ends_with(" UTC  Bob → you  [next]"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "  while you were out");
    assert_eq!(out.stderr, "✔ 1 message in dev\n");

    // From stdin, with a priority; only the id on stdout.
    let out = bobs
        .cmd(["send", "alice", "-", "--priority", "now"])
        .stdin("two lines\nof text\n")
        .run()
        .await
        .expect_code(0);
    let second_id = out.stdout.trim_end().to_owned();
    assert_eq!(out.stdout, format!("{second_id}\n"));
    assert!(second_id.starts_with("msg_") && second_id != first_id);

    // The next inbox has only the new one.
    let json = alices
        .cmd(["inbox", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["mesh"], "dev");
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{json}");
    assert_eq!(messages[0]["id"], second_id.as_str());
    assert_eq!(messages[0]["text"], "two lines\nof text");
    assert_eq!(messages[0]["priority"], "now");
    assert_eq!(messages[0]["kind"], "direct");
    assert_eq!(messages[0]["from"]["display_name"], "Bob");
    assert_eq!(messages[0]["from"]["member_id"], bob_id.as_str());
    let out = alices.cmd(["inbox"]).run().await.expect_code(0);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No new messages in dev.\n");

    // Alice follows; Bob sees her session. Bob's one-off commands are
    // plumbing: her follow shows his sessions that stay, not them.
    let mut follow = alices.cmd(["inbox", "--follow", "--json"]).stream();
    follow
        .stderr_where("that it is listening", |l| {
            l == "✔ Connected to dev as Alice; waiting for messages (Ctrl-C to stop)"
        })
        .await;
    let out = bobs.cmd(["peers"]).run().await.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "only Alice's session, no one offline:\n{}",
        out.stdout
    );
    assert!(lines[0].starts_with("SESSION   NAME   MEMBER  ROLE   GROUPS  STATUS  CONNECTED"));
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[1..6],
        ["Alice", "Alice", "inbox", "-", "idle"],
        "{}",
        lines[1]
    );
    assert_eq!(row[0].len(), 8);
    assert_eq!(out.stderr, "");
    let mut bob_follows = bobs.cmd(["inbox", "--follow"]).stream();
    bob_follows
        .stderr_where("that it is listening", |l| {
            l.starts_with("✔ Connected to dev as Bob")
        })
        .await;
    follow
        .stderr_where("Bob's follower connecting", |l| {
            l == "+ Bob connected (inbox)"
        })
        .await;
    drop(bob_follows);
    follow
        .stderr_where("Bob's follower leaving", |l| l == "- Bob left")
        .await;
    assert!(
        !follow
            .stderr
            .seen
            .iter()
            .any(|l| l.contains("connected (cli)")),
        "a one-off command was shown:\n{}",
        follow.context()
    );

    let json = bobs
        .cmd(["peers", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(json["mesh"], "dev");
    assert_eq!(json["member_id"], bob_id.as_str());
    let peers = json["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "{json}");
    assert_eq!(peers[0]["display_name"], "Alice");
    assert_eq!(peers[0]["member_name"], "Alice");
    assert_eq!(peers[0]["member_id"], alice_id.as_str());
    assert_eq!(peers[0]["role"], "inbox");
    assert_eq!(peers[0]["status"], "idle");
    assert_eq!(peers[0]["you"], false);
    assert_eq!(json["offline"], serde_json::json!([]));
    let session_prefix: String = peers[0]["session_key"]
        .as_str()
        .expect("a session key")
        .chars()
        .take(8)
        .collect();

    // A message to Alice now goes to the session that follows, at once.
    let sent = bobs
        .cmd(["send", "Alice", "hello from bob", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(sent["waits"], false);
    // Her session, and her machine key for whichever session comes next.
    assert_eq!(sent["recipients"], 2);
    assert_eq!(sent["sessions"], 1);
    let got = follow.stdout_json("the message").await;
    assert_eq!(got["text"], "hello from bob");
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["from"]["display_name"], "Bob");
    assert_eq!(got["kind"], "direct");
    assert_eq!(got["priority"], "next");
    assert!(got["sent_at"].as_str().is_some());

    // To everyone connected, and to the session by its key prefix.
    bobs.cmd(["send", "*", "deploying now", "--priority", "now"])
        .says(0, "✔ Sent to everyone connected to dev (1 session)\n")
        .await;
    let got = follow.stdout_json("the broadcast").await;
    assert_eq!(got["text"], "deploying now");
    assert_eq!(got["kind"], "broadcast");
    assert_eq!(got["priority"], "now");
    bobs.cmd(["send", &session_prefix, "just this session"])
        .says(0, &format!("✔ Sent to {session_prefix} (1 session)\n"))
        .await;
    assert_eq!(
        follow.stdout_json("the message to the session").await["text"],
        "just this session"
    );

    // Ctrl-C ends it, exit 0.
    follow.signal("INT");
    let (code, stderr) = follow.finish().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.ends_with("Stopped listening to dev."), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_lists_offline_members_and_your_own_sessions() {
    let DevMesh(server, mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;
    let carol = server.register("Carol").await;
    let carols = machine(&server, &carol).await;
    let link = invite_link(&alices, ["invite"]).await;
    carols.cmd(["join", &link]).run().await.expect_code(0);

    // Alone: no one else connected, Bob and Carol offline.
    let out = alices.cmd(["peers"]).run().await.expect_code(0);
    out.stderr_has("No one else is connected to dev.\n");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["OFFLINE", "MEMBER", "ID", "ROLE", "MACHINES"]
    );
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[1].starts_with("Bob "), "{}", out.stdout);
    assert!(lines[1].contains(&mesh.member("Bob").member_id));
    assert!(lines[1].ends_with("member  1"), "{}", lines[1]);
    assert!(lines[2].starts_with("Carol "), "{}", out.stdout);

    // Another session of Alice's own is marked; Bob has one now too.
    let laptop = machine(&server, &mesh.admin().user).await;
    let mut follow_own = laptop.cmd(["inbox", "--follow"]).stream();
    follow_own
        .stderr_where("that it is listening", |l| {
            l.starts_with("✔ Connected to dev as Alice")
        })
        .await;
    let mut follow_bob = bobs.cmd(["inbox", "--follow"]).stream();
    follow_bob
        .stderr_where("that it is listening", |l| {
            l.starts_with("✔ Connected to dev as Bob")
        })
        .await;
    let out = alices.cmd(["peers"]).run().await.expect_code(0);
    let mine = out
        .stdout
        .lines()
        .find(|l| l.contains("Alice (you)"))
        .unwrap_or_else(|| panic!("no own session:\n{}", out.stdout));
    assert!(mine.contains(" inbox "), "{mine}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(" Bob ") && !l.contains("(you)"))
    );
    let offline: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("OFFLINE"))
        .collect();
    assert_eq!(offline.len(), 2, "only Carol is offline:\n{}", out.stdout);
    assert!(offline[1].starts_with("Carol "));
    let json = alices
        .cmd(["peers", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    let you: Vec<bool> = json["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .map(|p| p["you"] == true)
        .collect();
    assert_eq!(you.iter().filter(|y| **y).count(), 1, "{json}");
    assert_eq!(json["offline"][0]["display_name"], "Carol");
    assert_eq!(json["offline"][0]["role"], "member");

    // A human follower sees a message laid out for people.
    alices
        .cmd(["send", "Bob", "for bob's eyes"])
        .run()
        .await
        .expect_code(0);
    let header = follow_bob.stdout_line("the header").await;
    assert!(header.ends_with(" UTC  Alice → you  [next]"), "{header}");
    assert_eq!(follow_bob.stdout_line("the text").await, "  for bob's eyes");
    drop(follow_own);
}

// ------------------------------------------------------------- bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_and_meshes_are_refused_with_their_exit_codes() {
    let DevMesh(server, mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;

    // Nothing goes by that name: 5. An empty group, no one else connected: 5.
    let out = bobs.cmd(["send", "Zoe", "hi"]).run().await.expect_code(5);
    assert_eq!(
        out.stderr,
        "✘ No peer or member called `Zoe` in this mesh (see `claudemesh peers`)\n"
    );
    assert_eq!(out.stdout, "");
    bobs.cmd(["send", "@ops", "hi"])
        .says(5, "✘ No one connected is in the group @ops\n")
        .await;
    bobs.cmd(["send", "*", "hi"])
        .says(5, "✘ No one else is connected to this mesh\n")
        .await;
    // Nothing to send: 3, before any connection.
    bobs.cmd(["send", "Alice", ""])
        .says(3, "✘ The message is empty\n")
        .await;
    bobs.cmd(["send", "Alice", "-"])
        .stdin("\n")
        .says(3, "✘ The message is empty\n")
        .await;
    bobs.cmd(["send", "Alice", &"x".repeat(16 * 1024 + 1)])
        .says(3, "at most 16384 can be sent")
        .await;
    bobs.cmd(["send", "Alice", "hi", "--priority", "urgent"])
        .run()
        .await
        .expect_code(3);

    // A name two members share: 3, with their ids; the id itself works.
    let carol = server.register("Carol").await;
    let carols = machine(&server, &carol).await;
    let link = invite_link(&alices, ["invite"]).await;
    carols
        .cmd(["join", &link, "--name", "Alice"])
        .run()
        .await
        .expect_code(0);
    let alice_id = &mesh.member("Alice").member_id;
    let out = bobs.cmd(["send", "Alice", "hi"]).run().await.expect_code(3);
    out.stderr_has("✘ `Alice` names several members (")
        .stderr_has(alice_id)
        .stderr_has("); use a member id\n");
    bobs.cmd(["send", alice_id, "hi", "--json"])
        .run()
        .await
        .expect_code(0);

    // Which mesh: not joined here is 5, a malformed slug 3, two joined 3.
    bobs.cmd(["peers", "--mesh", "nope"])
        .says(5, "✘ No mesh called `nope` is joined on this machine\n")
        .await;
    bobs.cmd(["inbox", "--mesh", "Not A Slug"])
        .says(3, "✘ Invalid --mesh \"Not A Slug\"")
        .await;
    bobs.cmd(["create", "Ops"]).run().await.expect_code(0);
    let out = bobs.cmd(["peers"]).run().await.expect_code(3);
    assert_eq!(
        out.stderr,
        "✘ Which mesh? This machine has joined 2: dev, ops\n\
         Give one with --mesh, e.g. `claudemesh peers --mesh dev`.\n"
    );
    bobs.cmd(["peers", "--mesh", "ops"])
        .says(0, "No one else is connected to ops.\n")
        .await;

    // No mesh joined on this machine: 5, with how to get one.
    let dan = server.register("Dan").await;
    let dans = machine(&server, &dan).await;
    for args in [
        vec!["peers"],
        vec!["send", "Alice", "hi"],
        vec!["inbox"],
        vec!["inbox", "--follow"],
    ] {
        let out = dans.cmd_args(&args).run().await.expect_code(5);
        out.stderr_has("✘ No mesh is joined on this machine\n")
            .stderr_has("claudemesh create")
            .stderr_has("claudemesh join");
    }

    // Not signed in: 2.
    let nobody = Cli::for_server(&server);
    for args in [vec!["peers"], vec!["send", "Alice", "hi"], vec!["inbox"]] {
        nobody.cmd_args(&args).says(2, "✘ Not logged in\n").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refusals_and_lost_connections_map_to_exit_codes() {
    let DevMesh(mut server, mesh, [alices, bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;

    // Sending too fast: 1, saying when to try again. (The burst is 10, the
    // rate 1 a second: a send takes well under that.)
    let mut sent = 0;
    let refused = loop {
        let out = bobs.cmd(["send", "Alice", "spam"]).run().await;
        if out.code != 0 {
            break out;
        }
        sent += 1;
        assert!(sent < 40, "the broker's send rate is not limited");
    };
    let out = refused.expect_code(1);
    out.stderr_has("✘ Sending too fast")
        .stderr_has("Try again in ");
    assert!(sent >= 10, "{sent} sent before the limit");
    alices
        .cmd(["inbox"])
        .says(0, &format!("✔ {sent} messages in dev\n"))
        .await;

    // Removed by an admin: 7, with a pointer to sync.
    mesh.remove("Bob").await;
    let out = bobs.cmd(["peers"]).run().await.expect_code(7);
    out.stderr_has("✘ This key belongs to no current member of this mesh\n")
        .stderr_has("Run `claudemesh sync`");

    // The server goes away under a follower: 4; and then nothing is reachable: 4.
    let mut follow = alices.cmd(["inbox", "--follow"]).stream();
    follow
        .stderr_where("that it is listening", |l| {
            l.starts_with("✔ Connected to dev")
        })
        .await;
    server.stop().await;
    let (code, stderr) = follow.finish().await;
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("✘ The server is restarting; connect again"),
        "{stderr}"
    );
    alices
        .cmd(["peers"])
        .says(4, "✘ Could not reach the claudemesh broker at ")
        .await;
}

// ---------------------------------------------------------------- engines

// ------------------------------------------------ a database that lies

/// Whoever holds the broker's database copies a waiting message under a
/// new id and relabels another: `inbox` shows the genuine one once, warns
/// about the others, and shows them as nothing else.
async fn inbox_drops_what_the_database_copied_or_relabelled(engine: Engine) {
    let DevMesh(server, _mesh, [alices, bobs]) = DevMesh::start(engine, ["Alice", "Bob"]).await;
    let sent = bobs
        .cmd(["send", "Alice", "pay the invoice", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    let id = sent["id"].as_str().expect("an id").to_owned();
    let other = bobs
        .cmd(["send", "Alice", "just between us"])
        .run()
        .await
        .expect_code(0)
        .stdout
        .trim_end()
        .to_owned();
    let copy = format!("msg_{}", "c0".repeat(16));
    server.copy_broker_message(&id, &copy).await;
    server
        .relabel_broker_message(&other, "broadcast", None)
        .await;

    let out = alices.cmd(["inbox", "--json"]).run().await.expect_code(0);
    let json = out.stdout_json();
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{json}");
    assert_eq!(messages[0]["id"], id.as_str());
    assert_eq!(messages[0]["text"], "pay the invoice");
    out.stderr_has("Dropped a message that failed its checks: its sealed id is not the broker's")
        .stderr_has(
            "Dropped a message that failed its checks: its sealed kind or group is not the broker's",
        );
    // Dropped for good: acknowledged, they do not come again.
    let out = alices.cmd(["inbox"]).run().await.expect_code(0);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "No new messages in dev.\n");
}

on_both_engines!(
    messages_wait_for_the_offline_and_reach_a_follower,
    inbox_drops_what_the_database_copied_or_relabelled,
);
