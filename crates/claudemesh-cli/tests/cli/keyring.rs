//! The token in the OS credential store, as the binary meets it.
//!
//! Each command is a process of its own and keyring-core's mock store lives
//! in one process's memory, so the round trip through a store (save, the
//! token not in auth.json, load, logout removing both) is unit-tested in
//! `auth_store.rs` and `credential_store.rs`. Here: the default on a
//! machine without a D-Bus session bus (the harness clears the environment,
//! as CI and SSH sessions are), a session bus that is not there, the test
//! doubles that fail or hang, `--insecure-storage`, and logout when the
//! store cannot give the token back. The harness says
//! `CLAUDEMESH_KEYRING=off`, so these tests set the variable (empty: the
//! default).

use crate::harness::*;

const KEYRING: &str = "CLAUDEMESH_KEYRING";
#[cfg(feature = "keyring")]
const NOTICE: &str = "⚠ No OS credential store could keep the token (";

/// `login --with-token` of `token` with `CLAUDEMESH_KEYRING=keyring` (the
/// harness says `off`; empty is the default, the OS store) and `more`
/// arguments.
async fn pat_login(cli: &Cli, token: &str, keyring: &str, more: &[&str]) -> Finished {
    let mut invocation = cli.cmd(["login", "--with-token"]).env(KEYRING, keyring);
    invocation.command.args(more);
    invocation.stdin(token).run().await
}

/// The token is in auth.json, readable by its owner only.
fn assert_token_in_the_file(cli: &Cli, token: &str) {
    assert_eq!(cli.saved_token(), token);
    assert_eq!(mode(&cli.auth_path()), 0o600);
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_bus_the_token_goes_to_the_file_and_that_is_said_once() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);

    let out = pat_login(&cli, &pat.token, "", &[]).await.expect_code(0);
    out.stderr_has(&format!(
        "{NOTICE}no D-Bus session bus); it is saved in {} instead, readable only by you. (Said once.)\n",
        cli.auth_path().display()
    ))
    .stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()))
    .never_shows(&pat.token);
    assert_token_in_the_file(&cli, &pat.token);
    assert_eq!(mode(&cli.config_dir.join("keyring.json")), 0o600);

    let again = pat_login(&cli, &pat.token, "", &[]).await.expect_code(0);
    assert!(!again.stderr.contains(NOTICE), "{}", again.stderr);
    let who = cli.cmd(["whoami", "--json"]).run().await.expect_code(0);
    assert_eq!(who.stdout_json()["source"], "file");
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_bus_that_is_not_there_falls_back_to_the_file() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);
    let gone = cli.config_dir.with_file_name("no-such-bus");

    // The real Secret Service store, over libdbus, meets a dead address.
    let out = cli
        .cmd(["login", "--with-token", "--json"])
        .env(KEYRING, "")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            &format!("unix:path={}", gone.display()),
        )
        .stdin(&pat.token)
        .run()
        .await
        .expect_code(0);
    out.stderr_has(NOTICE).never_shows(&pat.token);
    assert!(
        !out.stderr.contains("no D-Bus session bus"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout_json()["token_storage"], "file");
    assert_token_in_the_file(&cli, &pat.token);
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_or_hangs_leaves_the_token_in_the_file() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;

    for (double, why) in [
        ("fail", "the failing test store"),
        ("hang", "it did not answer within 2 s"),
    ] {
        let cli = Cli::for_server(&server);
        let out = pat_login(&cli, &pat.token, double, &[])
            .await
            .expect_code(0);
        out.stderr_has(NOTICE)
            .stderr_has(why)
            .stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()))
            .never_shows(&pat.token);
        assert_token_in_the_file(&cli, &pat.token);
        // The token is in the file: the store is not asked again.
        cli.cmd(["whoami"])
            .env(KEYRING, double)
            .run()
            .await
            .expect_code(0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_storage_keeps_the_token_in_the_file() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);

    // Even with a store that would take it.
    let out = pat_login(&cli, &pat.token, "mock", &["--insecure-storage"])
        .await
        .expect_code(0);
    out.stderr_has(&format!("✔ Token saved to {}\n", cli.auth_path().display()))
        .never_shows(&pat.token);
    assert!(!out.stderr.contains("credential store"), "{}", out.stderr);
    assert_token_in_the_file(&cli, &pat.token);
    assert!(
        !cli.config_dir.join("keyring.json").exists(),
        "nothing told"
    );
    cli.cmd(["whoami"]).run().await.expect_code(0);
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_store_is_not_in_auth_json() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);

    let out = pat_login(&cli, &pat.token, "mock", &["--json"])
        .await
        .expect_code(0);
    out.stderr_has(&format!(
        "✔ Token saved to the OS credential store (the rest of the login in {})\n",
        cli.auth_path().display()
    ))
    .never_shows(&pat.token);
    assert!(!out.stderr.contains(NOTICE), "{}", out.stderr);
    let json = out.stdout_json();
    assert_eq!(json["token_storage"], "keyring");
    assert_eq!(
        json["auth_file"],
        cli.auth_path().display().to_string().as_str()
    );
    let text = std::fs::read_to_string(cli.auth_path()).expect("auth.json");
    assert!(!text.contains(&pat.token), "no token in auth.json");
    let saved = cli.auth_json();
    assert!(saved.get("token").is_none());
    assert_eq!(saved["keyring"]["service"], "claudemesh");
    assert_eq!(
        saved["keyring"]["user"],
        cli.config_dir.display().to_string().as_str()
    );
    assert_eq!(saved["user"]["name"], "Alice");
    assert_eq!(mode(&cli.auth_path()), 0o600);
}

#[cfg(feature = "keyring")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_removes_the_login_even_when_the_store_cannot_give_the_token_back() {
    let server = server(Engine::Sqlite).await;
    let alice = server.register("Alice").await;
    let pat = alice.create_pat("laptop", None).await;
    let cli = Cli::for_server(&server);

    // A new process has a new, empty mock store: the token is missing.
    pat_login(&cli, &pat.token, "mock", &[])
        .await
        .expect_code(0);
    cli.cmd(["whoami"])
        .env(KEYRING, "mock")
        .says(
            2,
            "✘ The saved login's token is missing from the OS credential store\n",
        )
        .await;
    let out = cli
        .cmd(["logout", "--json"])
        .env(KEYRING, "mock")
        .run()
        .await
        .expect_code(0);
    out.stderr_has("⚠ The saved login's token is missing from the OS credential store, so it cannot be revoked from here\n")
        .stderr_has(&format!("✔ Removed {}\n", cli.auth_path().display()));
    let json = out.stdout_json();
    assert_eq!(json["revoked_on_server"], false);
    assert_eq!(json["removed_from_keyring"], false);
    assert!(!cli.auth_path().exists());

    // A store that fails: said, and the file goes all the same.
    pat_login(&cli, &pat.token, "mock", &[])
        .await
        .expect_code(0);
    let out = cli
        .cmd(["logout"])
        .env(KEYRING, "fail")
        .run()
        .await
        .expect_code(0);
    out.stderr_has("⚠ Cannot read the saved login's token from the OS credential store")
        .stderr_has("⚠ Could not remove the token from the OS credential store (")
        .stderr_has(&format!("✔ Removed {}\n", cli.auth_path().display()));
    assert!(!cli.auth_path().exists());
    // The token itself was never revoked: it is still good.
    assert_eq!(whoami_status(&server, &pat.token).await, 200);
}
