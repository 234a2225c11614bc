//! `claudemesh log tail` and `claudemesh log verify` of the real binary
//! against the real server: the latest entries, a follower that sees a
//! teammate's session and message (metadata only) as they happen, bad
//! input refused before any request, and a chain broken by hand.

use crate::harness::*;

on_both_engines!(
    log_tail_shows_the_latest_and_follows_a_teammates_session_and_message,
    log_verify_names_an_entry_deleted_by_hand,
);

async fn log_tail_shows_the_latest_and_follows_a_teammates_session_and_message(engine: Engine) {
    let DevMesh(_server, mesh, [alices, bobs]) = DevMesh::start(engine, ["Alice", "Bob"]).await;

    let out = alices.cmd(["log", "tail"]).run().await.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains("#1     member.joined"), "{}", lines[0]);
    assert!(lines[0].ends_with("Alice joined as admin"), "{}", lines[0]);
    assert!(lines[3].ends_with("Bob joined as member"), "{}", lines[3]);

    let out = alices
        .cmd([
            "log",
            "tail",
            "-n",
            "2",
            "--json",
            "--kind",
            "member.joined",
        ])
        .run()
        .await
        .expect_code(0);
    let entries: Vec<Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{}", out.stdout);
    assert_eq!(entries[1]["detail"]["display_name"], "Bob");
    assert_eq!(entries[1]["cursor"], format!("{}.4", mesh.id));
    let out = alices
        .cmd(["log", "tail", "--since", "1h", "--json", "-n", "1"])
        .run()
        .await
        .expect_code(0);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stdout.contains("\"seq\":4"), "{}", out.stdout);

    // Alice follows; Bob sends her a message from his machine.
    let mut follow = alices
        .cmd(["log", "tail", "--follow", "--json", "-n", "1"])
        .stream();
    let last = follow.stdout_json("the newest entry").await;
    assert_eq!(last["seq"], 4);
    bobs.cmd(["send", "Alice", "the launch codes"])
        .run()
        .await
        .expect_code(0);
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| e["kind"] == "message.sent") {
        seen.push(follow.stdout_json("the next entry").await);
    }
    assert_eq!(seen[0]["kind"], "session.connected", "{seen:?}");
    assert_eq!(seen[0]["detail"]["display_name"], "Bob");
    let sent = seen.last().unwrap();
    assert_eq!(sent["detail"]["sender"], "Bob");
    assert_eq!(sent["detail"]["message_kind"], "direct");
    assert!(!follow.stdout.text().contains("launch codes"));
    follow.signal("INT");
    let (code, stderr) = follow.finish().await;
    assert_eq!(code, 0, "{stderr}");

    // Bad input: refused before any request, exit 3.
    alices
        .cmd(["log", "tail", "--since", "yesterday"])
        .says(
            3,
            "✘ --since `yesterday` is neither a duration nor a time\n",
        )
        .await;
    alices
        .cmd(["log", "tail", "--kind", "member.exploded"])
        .says(
            3,
            "✘ Unknown log kind `member.exploded`\nThe kinds are member.joined, ",
        )
        .await;
    alices
        .cmd(["log", "tail", "-n", "0"])
        .run()
        .await
        .expect_code(3);
    alices
        .cmd(["log", "tail", "--mesh", "elsewhere"])
        .run()
        .await
        .expect_code(5);
}

async fn log_verify_names_an_entry_deleted_by_hand(engine: Engine) {
    let DevMesh(server, mesh, [alices, _bobs]) = DevMesh::start(engine, ["Alice", "Bob"]).await;
    alices
        .cmd(["log", "verify"])
        .says(0, "✔ The log of dev holds: 4 entries checked, up to #4\n")
        .await;
    sqlx::query("DELETE FROM mesh_log WHERE mesh_id = $1 AND seq = 2")
        .bind(&mesh.id)
        .execute(server.state().pool())
        .await
        .unwrap();
    alices
        .cmd(["log", "verify"])
        .says(
            1,
            "✘ The log of dev is broken at entry #2: entry 2 is missing (deleted)\n",
        )
        .await;
    let out = alices
        .cmd(["log", "verify", "--json"])
        .run()
        .await
        .expect_code(1);
    let json = out.stdout_json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["broken_seq"], 2);
}

#[tokio::test]
async fn log_tail_follow_ends_with_0_once_its_reader_is_gone() {
    let DevMesh(_server, _mesh, [alices, _bobs]) =
        DevMesh::start(Engine::Sqlite, ["Alice", "Bob"]).await;
    let mut invocation = alices.cmd(["log", "tail", "--follow", "-n", "1"]);
    invocation
        .command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = invocation
        .command
        .spawn()
        .expect("the claudemesh binary starts");
    let stdout = child.stdout.take().unwrap();
    // Read the first line, then close the pipe as `head -1` would.
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(first.contains("member.joined"), "{first}");
    // Nothing new happens in the mesh: the follow notices the closed pipe
    // anyway (it does not wait for a next entry to write), exit 0.
    let status = exit_of(&mut child).await.expect("log tail exits");
    assert_eq!(status.code(), Some(0));
}
