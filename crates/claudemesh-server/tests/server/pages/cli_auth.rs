//! `/cli-auth`: the approval card a CLI login links to, and each state of a code.

use super::browser::*;

on_both_engines!(
    approving_on_the_page_logs_the_cli_in,
    each_state_of_a_code_has_its_own_page,
);

#[tokio::test]
async fn cli_auth_sends_a_signed_out_browser_to_sign_in_and_back() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (_, email) = Browser::signed_in(&server, "Alice").await;
    let (_, user_code) = start_login(&server).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let page = browser.get(&format!("/cli-auth?code={user_code}")).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location(),
        format!("/login?next=%2Fcli-auth%3Fcode%3D{user_code}")
    );
    let login = browser.get(page.location()).await;
    assert!(login.contains("approve the login from your terminal"));
    assert!(login.contains(&format!(
        r#"name="next" value="/cli-auth?code={user_code}""#
    )));
    let done = browser
        .post(
            "/login",
            &[
                ("email", &email),
                ("password", DEFAULT_PASSWORD),
                ("next", &format!("/cli-auth?code={user_code}")),
                ("csrf", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(done.location(), format!("/cli-auth?code={user_code}"));
    let card = browser.get(done.location()).await;
    assert_eq!(card.status, 200);
    assert!(card.contains(&user_code));
}

#[tokio::test]
async fn the_approval_card_shows_the_request_and_get_never_approves() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    server.clock.advance(Duration::from_secs(13));
    // The code as a person might type it: any case, no dash.
    let card = alice
        .get(&format!(
            "/cli-auth?code={}",
            user_code.to_lowercase().replace('-', "")
        ))
        .await;
    assert_eq!(card.status, 200, "{}", card.body);
    assert!(card.contains("Link this CLI session?"));
    assert!(card.contains(&user_code), "the code, formatted");
    assert!(
        card.contains("Ana's <MacBook></span> · darwin · arm64"),
        "{}",
        card.body
    );
    assert!(
        !card.raw_contains("<MacBook>"),
        "the device name is escaped"
    );
    assert!(card.contains("13 seconds ago"), "{}", card.body);
    assert!(card.contains("127.0.0.1"));
    assert!(card.contains("same as the request"));
    assert!(card.contains("Approve only if you just ran <code>claudemesh login</code> yourself"));
    assert!(
        card.contains(r#"data-remaining="587""#) && card.contains(">9:47<"),
        "the countdown"
    );
    assert!(card.contains(r#"<script src="/static/countdown.js" defer></script>"#));
    assert!(card.contains(r#"value="approve""#) && card.contains(r#"value="deny""#));
    assert!(card.contains(&format!(r#"name="csrf" value="{}""#, card.csrf())));
    assert!(
        !card.contains(&device_code),
        "the device code is the CLI's secret"
    );
    for _ in 0..3 {
        let again = alice.get(&format!("/cli-auth?code={user_code}")).await;
        assert_eq!(again.status, 200);
        assert_eq!(poll(&server, &device_code).await["status"], "pending");
    }
    // HEAD and an approve-looking query change nothing either.
    alice
        .client
        .head(alice.url(&format!("/cli-auth?code={user_code}&decision=approve")))
        .send()
        .await
        .unwrap();
    alice
        .get(&format!("/cli-auth?code={user_code}&decision=approve"))
        .await;
    assert_eq!(poll(&server, &device_code).await["status"], "pending");
}

async fn approving_on_the_page_logs_the_cli_in(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let done = alice.decide_on_card(&user_code, "approve").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/cli-auth/approved");
    let result = alice.get(done.location()).await;
    assert!(result.contains("✓ CLI authenticated. Return to your terminal."));
    let polled = poll(&server, &device_code).await;
    assert_eq!(polled["status"], "approved");
    let token = polled["token"].as_str().unwrap().to_owned();
    let (status, _) = alice.api_with_token(&token, "/api/my/whoami").await;
    assert_eq!(status, 200);
    // The new session is listed with its device.
    let tokens = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(tokens.contains("Ana's <MacBook> · darwin · arm64"));

    let (device_code, user_code) = start_login(&server).await;
    let done = alice.decide_on_card(&user_code, "deny").await;
    assert_eq!(done.location(), "/cli-auth/denied");
    assert!(
        alice
            .get(done.location())
            .await
            .contains("Login request denied")
    );
    assert_eq!(poll(&server, &device_code).await["status"], "denied");
}

async fn each_state_of_a_code_has_its_own_page(engine: Engine) {
    let server = TestServer::start(engine).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;

    let no_code = alice.get("/cli-auth").await;
    assert_eq!(no_code.status, 200);
    assert!(no_code.contains("Enter the code from your terminal"));
    assert!(no_code.contains(r#"name="code""#));

    let unknown = alice.get("/cli-auth?code=BCDF-GHJK").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.contains("Unknown code"));
    assert!(
        unknown.contains(r#"name="code""#),
        "a field to type it again"
    );
    let garbage = alice.get("/cli-auth?code=%3Cscript%3E").await;
    assert_eq!(garbage.status, 404);
    assert!(!garbage.raw_contains("<script>"));

    let (_, expiring) = start_login(&server).await;
    let (_, used) = start_login(&server).await;
    let card = alice.get(&format!("/cli-auth?code={used}")).await;
    alice.decide(&card, &used, "approve").await;
    let already = alice.get(&format!("/cli-auth?code={used}")).await;
    assert_eq!(already.status, 409);
    assert!(already.contains("This code was already used"));
    assert!(already.contains("already been approved"));
    let twice = alice.decide(&card, &used, "deny").await;
    assert_eq!(twice.status, 409);

    let card = alice.get(&format!("/cli-auth?code={expiring}")).await;
    server.clock.advance(Duration::from_secs(11 * 60));
    let expired = alice.get(&format!("/cli-auth?code={expiring}")).await;
    assert_eq!(expired.status, 410);
    assert!(expired.contains("This code has expired"));
    assert!(expired.contains("Run claudemesh login again"));
    // A card left open past expiry cannot approve.
    let late = alice.decide(&card, &expiring, "approve").await;
    assert_eq!(late.status, 410);
    assert!(late.contains("This code has expired"));

    // Guessing: after 10 unknown codes the account is stopped for a while.
    for _ in 0..10 {
        alice.get("/cli-auth?code=ZZZZ-ZZZZ").await;
    }
    let limited = alice.get("/cli-auth?code=ZZZZ-ZZZZ").await;
    assert_eq!(limited.status, 429);
    assert!(limited.contains("Too many wrong codes"));
    assert!(limited.contains("Wait 15 minutes"));
    assert!(!limited.header("retry-after").is_empty());
}
