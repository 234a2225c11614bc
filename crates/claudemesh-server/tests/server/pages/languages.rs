//! Spanish and English: by query, then cookie, then Accept-Language.

use super::browser::*;

#[tokio::test]
async fn spanish_by_query_then_cookie_then_accept_language() {
    let server = TestServer::start(Engine::Sqlite).await;
    let browser = Browser::new(&server, Some(&server.base_url));
    let english = browser.get("/login").await;
    assert!(english.contains(r#"<html lang="en">"#));
    assert!(english.contains(">Sign in</h1>"));
    assert!(english.contains(r#"href="/login?lang=es""#), "the switcher");

    let spanish = browser.get("/login?lang=es").await;
    assert!(spanish.contains(r#"<html lang="es">"#));
    assert!(spanish.contains(">Iniciar sesión</h1>"));
    let cookie = spanish
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lang=es"))
        .expect("lang cookie");
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    // The cookie keeps it, even against Accept-Language.
    let remembered = browser
        .get_with("/login", header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .await;
    assert!(remembered.contains(">Iniciar sesión</h1>"));
    assert!(
        browser
            .get("/login?lang=en")
            .await
            .contains(">Sign in</h1>")
    );
    assert!(
        browser.get("/login").await.contains(">Sign in</h1>"),
        "?lang=en replaced the cookie"
    );

    let fresh = Browser::new(&server, Some(&server.base_url));
    let by_header = fresh
        .get_with(
            "/register",
            header::ACCEPT_LANGUAGE,
            "es-ES,es;q=0.9,en;q=0.8",
        )
        .await;
    assert!(by_header.contains(">Crea tu cuenta</h1>"));
    let unsupported = fresh
        .get_with("/register", header::ACCEPT_LANGUAGE, "fr-FR,de;q=0.9")
        .await;
    assert!(unsupported.contains(">Create your account</h1>"));
}

#[tokio::test]
async fn the_whole_approval_reads_in_spanish() {
    let server = TestServer::start(Engine::Sqlite).await;
    let (alice, _) = Browser::signed_in(&server, "Alice").await;
    let (device_code, user_code) = start_login(&server).await;
    let card = alice
        .get(&format!("/cli-auth?code={user_code}&lang=es"))
        .await;
    assert!(card.contains("¿Vincular esta sesión de la CLI?"));
    assert!(card.contains("Aprueba solo si acabas de ejecutar <code>claudemesh login</code>"));
    assert!(card.contains(">Aprobar<") && card.contains(">Rechazar<"));
    assert!(
        card.contains(&format!(r#"href="/cli-auth?code={user_code}&lang=en""#)),
        "the switcher keeps the code"
    );
    let done = alice.decide(&card, &user_code, "approve").await;
    let result = alice.get(done.location()).await;
    assert!(result.contains("✓ CLI autenticada. Vuelve a tu terminal."));
    assert_eq!(poll(&server, &device_code).await["status"], "approved");
    assert!(
        alice
            .get("/cli-auth?code=BCDF-GHJK")
            .await
            .contains("Código desconocido")
    );
    let tokens = alice.get("/dashboard/settings/cli-tokens").await;
    assert!(tokens.contains("Generar un token nuevo") && tokens.contains("1 año"));
    let error = alice
        .post(
            "/dashboard/settings/cli-tokens",
            &[("name", ""), ("expiry", "30"), ("csrf", &tokens.csrf())],
        )
        .await;
    assert!(error.contains("Pon al token un nombre de 1 a 100 caracteres."));
    let evil = alice
        .client
        .post(alice.url("/dashboard/settings/cli-tokens"))
        .header(header::ORIGIN, EVIL)
        .form(&[("name", "x")])
        .send()
        .await
        .unwrap();
    assert!(evil.text().await.unwrap().contains("Solicitud rechazada"));
}
