//! The OpenAPI document, generated from the handlers' own annotations and
//! types, served at `/api/openapi.json`.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "claudemesh API", description = "Sign a terminal into claudemesh: device codes, tokens, accounts."),
    modifiers(&BearerAuth),
    tags(
        (name = "device codes", description = "CLI login (the spec's endpoints)"),
        (name = "oauth", description = "The same login as RFC 8628"),
        (name = "tokens", description = "Personal access tokens and CLI sessions"),
        (name = "accounts", description = "Registration and browser sign-in"),
        (name = "telemetry", description = "CLI usage events (docs/telemetry.md)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
