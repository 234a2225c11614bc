//! The OS credential store for real: login, commands and logout against a
//! running Secret Service (gnome-keyring, over D-Bus), not the file
//! fallback nor keyring-core's mock.
//!
//! They need a session bus with an unlocked Secret Service, named by
//! `DBUS_SESSION_BUS_ADDRESS`: `scripts/keyring-e2e` starts both
//! (`dbus-run-session`, `gnome-keyring-daemon --unlock`) and runs these
//! tests; a plain `cargo test` leaves them out (`#[ignore]`). What the
//! service holds is read back with `secret-tool` (libsecret), another
//! client of the same service, so the test does not take the CLI's word.

use crate::harness::*;

/// `CLAUDEMESH_KEYRING` empty: the OS credential store, the default.
const OS_STORE: &str = "";

/// The session bus `scripts/keyring-e2e` started.
fn bus() -> String {
    std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .expect("a session bus with a Secret Service: run scripts/keyring-e2e")
}

/// `claudemesh ARGS` with the OS credential store (the harness turns it
/// off) on the session bus.
fn with_keyring<const N: usize>(cli: &Cli, args: [&str; N]) -> Invocation {
    cli.cmd(args)
        .env("CLAUDEMESH_KEYRING", OS_STORE)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus())
}

/// What the Secret Service holds for the login of `cli`'s config
/// directory (keyring-core's attributes: service and username).
fn secret_of(cli: &Cli) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "claudemesh", "username"])
        .arg(&cli.config_dir)
        .env("DBUS_SESSION_BUS_ADDRESS", bus())
        .output()
        .expect("secret-tool runs (Debian: libsecret-tools)");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).expect("text"))
        .filter(|secret| !secret.is_empty())
}

/// auth.json names the store's entry and holds no token.
fn assert_login_file_without_token(cli: &Cli, token: &str) {
    let text = std::fs::read_to_string(cli.auth_path()).expect("auth.json");
    assert!(!text.contains(token), "the token is in auth.json");
    let file: Value = serde_json::from_str(&text).expect("JSON");
    assert!(file.get("token").is_none(), "{file}");
    assert_eq!(file["keyring"]["service"], "claudemesh");
    assert_eq!(
        file["keyring"]["user"],
        cli.config_dir.display().to_string()
    );
    assert_eq!(mode(&cli.auth_path()), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an unlocked Secret Service: scripts/keyring-e2e"]
async fn a_device_login_keeps_its_token_in_the_secret_service_and_logout_removes_it() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let cli = Cli::for_server(&server);

    let mut login = with_keyring(&cli, ["login", "--no-browser", "--device-name", "desk"]).spawn();
    let code = login.user_code().await;
    assert_eq!(alice.approve(&code).await.status(), 200);
    let out = login.finish().await.expect_code(0);
    out.stderr_has(&format!(
        "✔ Token saved to the OS credential store (the rest of the login in {})\n",
        cli.auth_path().display()
    ));
    assert!(
        !out.stderr.contains("No OS credential store"),
        "{}",
        out.stderr
    );

    let token = secret_of(&cli).expect("the Secret Service holds the token");
    assert!(token.starts_with("cm_session_"), "not a session token");
    out.never_shows(&token);
    assert_eq!(whoami_status(&server, &token).await, 200);
    assert_login_file_without_token(&cli, &token);

    // Every command finds it there; whoami says where it is.
    let who = with_keyring(&cli, ["whoami", "--json"])
        .run()
        .await
        .expect_code(0);
    who.never_shows(&token);
    let who = who.stdout_json();
    assert_eq!(who["source"], "keyring");
    assert_eq!(who["auth_file"], cli.auth_path().display().to_string());
    assert_eq!(who["user"]["name"], "Alice");
    let who = with_keyring(&cli, ["whoami"]).run().await.expect_code(0);
    assert!(
        who.stdout.contains(&format!(
            "From:       the OS credential store (the rest of the login in {})\n",
            cli.auth_path().display()
        )),
        "{}",
        who.stdout
    );
    with_keyring(&cli, ["list"]).run().await.expect_code(0);

    // Logout revokes the session and removes both halves.
    let out = with_keyring(&cli, ["logout"]).run().await.expect_code(0);
    out.stderr_has("✔ Token revoked on server\n")
        .never_shows(&token);
    assert_eq!(secret_of(&cli), None, "the entry is gone");
    assert!(!cli.auth_path().exists());
    assert_eq!(whoami_status(&server, &token).await, 401);
    with_keyring(&cli, ["whoami"]).run().await.expect_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an unlocked Secret Service: scripts/keyring-e2e"]
async fn a_pat_login_replaces_the_secret_in_place_and_logout_keeps_the_pat_working() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let first = alice.create_pat("first", None).await;
    let second = alice.create_pat("second", None).await;
    let cli = Cli::for_server(&server);

    for pat in [&first, &second] {
        let out = with_keyring(&cli, ["login", "--with-token", "--json"])
            .stdin(&pat.token)
            .run()
            .await
            .expect_code(0);
        out.never_shows(&pat.token);
        assert_eq!(out.stdout_json()["token_storage"], "keyring");
        assert_eq!(secret_of(&cli).as_deref(), Some(pat.token.as_str()));
        assert_login_file_without_token(&cli, &pat.token);
    }
    let who = with_keyring(&cli, ["whoami", "--json"])
        .run()
        .await
        .expect_code(0)
        .stdout_json();
    assert_eq!(who["source"], "keyring");
    assert_eq!(who["token"]["name"], "second");

    // A PAT is left working on the server (logout --revoke would revoke it).
    with_keyring(&cli, ["logout"]).run().await.expect_code(0);
    assert_eq!(secret_of(&cli), None);
    assert!(!cli.auth_path().exists());
    assert_eq!(whoami_status(&server, &second.token).await, 200);
}
