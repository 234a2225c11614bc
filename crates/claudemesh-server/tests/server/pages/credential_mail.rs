//! The mail for each new credential: a CLI session signed in, a personal
//! access token made. One mail each, in the approver's language, with the
//! device, IP and time, and a link that revokes the credential; none once the
//! account turns them off on the CLI tokens page.

use super::browser::*;
use crate::api::support::send;

on_both_engines!(each_new_credential_is_mailed_once_with_a_link_that_revokes_it,);

/// One mail from the outbox: its headers as sent, its body decoded.
struct Mail {
    headers: String,
    body: String,
}

impl Mail {
    /// The revoke link's path and query (the mail holds the full URL).
    fn revoke_path(&self, base_url: &str) -> String {
        let start = self
            .body
            .find(&format!("{base_url}/dashboard/settings/cli-tokens/revoke?"))
            .unwrap_or_else(|| panic!("a revoke link in {}", self.body));
        let url = self.body[start..].split_whitespace().next().unwrap();
        url.trim_start_matches(base_url).to_owned()
    }
}

/// The server's outbox, read with the testkit's mail reader (oldest first).
fn outbox(server: &TestServer) -> Vec<Mail> {
    claudemesh_testkit::outbox(&server.config().data_dir.join("outbox"))
        .into_iter()
        .map(|mail| Mail {
            headers: mail
                .data
                .split_once("\r\n\r\n")
                .map_or("", |(headers, _)| headers)
                .to_owned(),
            body: mail.body().replace("\r\n", "\n"),
        })
        .collect()
}

/// Waits (at most 10 s: the mail is sent in the background) until the outbox
/// holds `count` mails, and returns them, oldest first.
async fn wait_for_mails(server: &TestServer, count: usize) -> Vec<Mail> {
    for _ in 0..200 {
        let mails = outbox(server);
        if mails.len() >= count {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {count} mails, the outbox has {}",
        outbox(server).len()
    );
}

/// Opens a revoke link as the signed-in browser and confirms it.
async fn revoke_through(browser: &Browser, path: &str) -> Page {
    let confirm = browser.get(path).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let hidden = |name: &str| {
        let marker = format!(r#"name="{name}" value=""#);
        let start = confirm.body.find(&marker).unwrap() + marker.len();
        confirm.body[start..start + confirm.body[start..].find('"').unwrap()].to_owned()
    };
    browser
        .post(
            "/dashboard/settings/cli-tokens/revoke",
            &[
                ("id", &hidden("id")),
                ("kind", &hidden("kind")),
                ("csrf", &confirm.csrf()),
            ],
        )
        .await
}

async fn each_new_credential_is_mailed_once_with_a_link_that_revokes_it(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, email) = Browser::signed_in(&server, "Alice").await;

    // A terminal signs in: one mail when the CLI gets its token.
    let (device_code, user_code) = start_login(&server).await;
    alice.decide_on_card(&user_code, "approve").await;
    let session = poll(&server, &device_code).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mails = wait_for_mails(&server, 1).await;
    let mail = &mails[0];
    assert!(
        mail.headers.contains(&format!("To: {email}")),
        "{}",
        mail.headers
    );
    assert!(
        mail.headers.contains("Subject: New CLI sign-in"),
        "{}",
        mail.headers
    );
    assert!(
        mail.body
            .contains("Device: Ana's <MacBook> · darwin · arm64"),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("IP address: 127.0.0.1"), "{}", mail.body);
    assert!(mail.body.contains(" UTC"), "the time: {}", mail.body);
    assert!(!mail.body.contains(&session), "never the token");

    // A second poll gets `already_claimed` and mails nothing.
    assert_eq!(poll(&server, &device_code).await["already_claimed"], true);

    // A PAT made with the session token: the second mail.
    let (status, created) = send(
        reqwest::Client::new()
            .post(server.url("/api/my/cli/tokens"))
            .bearer_auth(&session)
            .json(&json!({ "name": "deploy-bot" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let pat = created["token"].as_str().unwrap().to_owned();
    let mails = wait_for_mails(&server, 2).await;
    let pat_mail = mails
        .iter()
        .find(|mail| mail.headers.contains("Subject: New personal access token"))
        .expect("the PAT's mail");
    assert!(
        pat_mail.body.contains("Token: deploy-bot"),
        "{}",
        pat_mail.body
    );
    assert!(!pat_mail.body.contains(&pat), "never the token");

    // Each link revokes its credential.
    let done = revoke_through(&alice, &pat_mail.revoke_path(&server.base_url)).await;
    assert_eq!(
        done.location(),
        "/dashboard/settings/cli-tokens?notice=revoked"
    );
    assert_eq!(alice.api_with_token(&pat, "/api/my/whoami").await.0, 401);
    assert_eq!(
        alice.api_with_token(&session, "/api/my/whoami").await.0,
        200
    );
    let done = revoke_through(&alice, &mails[0].revoke_path(&server.base_url)).await;
    assert_eq!(
        done.location(),
        "/dashboard/settings/cli-tokens?notice=revoked"
    );
    assert_eq!(
        alice.api_with_token(&session, "/api/my/whoami").await.0,
        401
    );

    assert_eq!(outbox(&server).len(), 2, "one mail per credential");
}

#[tokio::test]
async fn turned_off_on_the_tokens_page_no_mail_is_sent() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let page = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(
        page.raw_contains(r#"name="credential_mail" value="on" checked"#),
        "on by default"
    );
    // An unticked checkbox is left out of the form.
    let saved = alice
        .post(
            "/dashboard/settings/cli-tokens/mail",
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(
        saved.location(),
        "/dashboard/settings/cli-tokens?notice=mail-off"
    );
    let page = alice.get(saved.location()).await;
    assert!(page.contains("You will no longer get emails"));
    assert!(
        page.raw_contains(r#"name="credential_mail" value="on">"#),
        "unticked"
    );

    alice.approved_cli_session(&server).await;
    let made = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "quiet"), ("expiry", "30"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(made.status, 201);

    // Turned on again, the next token is mailed, and it is the only mail:
    // whether to mail is decided when the credential is made.
    let saved = alice
        .post(
            "/dashboard/settings/cli-tokens/mail",
            &[("credential_mail", "on"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(
        saved.location(),
        "/dashboard/settings/cli-tokens?notice=mail-on"
    );
    let made = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", "loud"), ("expiry", "30"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(made.status, 201);
    let mails = wait_for_mails(&server, 1).await;
    assert_eq!(
        mails.len(),
        1,
        "nothing was mailed while the setting was off"
    );
    assert!(mails[0].body.contains("Token: loud"), "{}", mails[0].body);
}

#[tokio::test]
async fn the_session_mail_is_in_the_approvers_language() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    // Picking Spanish once sets the language cookie for the next pages.
    alice.get("/dashboard?lang=es").await;
    alice.approved_cli_session(&server).await;
    let mail = &wait_for_mails(&server, 1).await[0];
    assert!(
        mail.body.contains("Dispositivo: Ana's <MacBook>"),
        "{}",
        mail.body
    );
    assert!(
        mail.body.contains("Dirección IP: 127.0.0.1"),
        "{}",
        mail.body
    );
    assert!(
        mail.body
            .contains("/dashboard/settings/cli-tokens/revoke?kind=session")
    );
}

#[tokio::test]
async fn the_setting_cannot_be_changed_without_the_form_token() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in_from(&server, "Alice", Some(EVIL)).await;
    let refused = alice
        .post("/dashboard/settings/cli-tokens/mail", &[("csrf", "forged")])
        .await;
    assert_eq!(refused.status, 403);
    let page = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(
        page.raw_contains(r#"name="credential_mail" value="on" checked"#),
        "still on"
    );
}
