//! The OpenAPI document, generated from the handlers' own annotations and
//! types, served at `/api/openapi.json`.
//!
//! It is meant to be true: a request its schemas allow is one the server
//! takes (the field rules come from [`claudemesh_api::rules`], which the
//! handlers check with), and every status a route can answer is listed,
//! including those of the extractors shared by many routes, listed once
//! here: [`JsonBodyRejected`], [`Unauthorized`], [`CsrfRejected`],
//! [`BrowserOnly`] and [`crate::auth::request_limit::RateLimited`].
//! `scripts/api-contract` holds the server to it with schemathesis.
//!
//! Routes that take a credential say which (`security`): `bearer` (a PAT
//! or a CLI session token), `oauth2` (the same session token, got through
//! RFC 8628), `cookie` (a browser's session).

use claudemesh_api::ErrorBody;
use utoipa::OpenApi;
use utoipa::openapi::OpenApiVersion;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, DeviceAuthorization, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "claudemesh API", description = "Sign a terminal into claudemesh: device codes, tokens, accounts, meshes, invites."),
    modifiers(&Security),
    // `TelemetryBatch.events` names it by reference only (its schema sets
    // the batch's size limit), so it is not collected on its own.
    components(schemas(claudemesh_api::telemetry::TelemetryEvent)),
    tags(
        (name = "device codes", description = "CLI login (the spec's endpoints)"),
        (name = "oauth", description = "The same login as RFC 8628"),
        (name = "tokens", description = "Personal access tokens and CLI sessions"),
        (name = "accounts", description = "Registration and browser sign-in"),
        (name = "meshes", description = "Meshes and their members"),
        (name = "invites", description = "Invites to a mesh"),
        (name = "mesh log", description = "A mesh's hash-chained log of events (metadata only)"),
        (name = "telemetry", description = "CLI usage events (docs/telemetry.md)"),
    )
)]
pub struct ApiDoc;

/// The credentials, and OpenAPI 3.2, the first version that can describe
/// the RFC 8628 device flow.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.openapi = OpenApiVersion::Version32;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A personal access token (`cm_pat_…`) or a CLI session token (`cm_session_…`)",
                    ))
                    .build(),
            ),
        );
        let device_flow = OAuth2::with_description(
            [Flow::DeviceAuthorization(DeviceAuthorization::new(
                "/oauth/device_authorization",
                "/oauth/token",
                Scopes::new(),
            ))],
            "RFC 8628: the access token is a CLI session token, sent as `bearer`",
        );
        components.add_security_scheme("oauth2", SecurityScheme::OAuth2(device_flow));
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::http::cookies::SESSION_COOKIE,
                "A browser's session, from signing in; a request that changes something also needs the same origin or the `x-csrf-token` header",
            ))),
        );
    }
}

/// What a route that reads a JSON body ([`crate::http::request::ApiJson`]) answers
/// to a body it cannot read.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum JsonBodyRejected {
    #[response(
        status = 400,
        description = "`invalid_json`: the body is not JSON; `invalid_request`: it is not of the documented shape, or a field breaks a rule (the message says which); a route may list more codes"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 413,
        description = "`payload_too_large`: the body is over 64 KiB"
    )]
    TooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "`unsupported_media_type`: the body is not sent with `Content-Type: application/json`"
    )]
    NotJson(ErrorBody),
}

/// What a route that takes a token or a browser session
/// ([`crate::auth::caller::Caller`]) answers without a good one.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "`unauthenticated`: no credential; `invalid_token`: the token is malformed, unknown or revoked; `token_expired`"
)]
pub struct Unauthorized(pub ErrorBody);

/// What a route that changes something answers to a browser session's
/// request from another site ([`crate::auth::caller::check_csrf`]); bearer tokens
/// never get it.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "`csrf_rejected`: a browser session's request from another origin without the `x-csrf-token` header"
)]
pub struct CsrfRejected(pub ErrorBody);

/// What a route for a signed-in browser only ([`crate::auth::caller::BrowserCaller`])
/// answers without one: a token is not enough there.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BrowserOnly {
    #[response(
        status = 401,
        description = "`unauthenticated`: no browser session (a bearer token is not accepted here)"
    )]
    NoSession(ErrorBody),
    #[response(
        status = 403,
        description = "`csrf_rejected`: the request came from another origin without the `x-csrf-token` header"
    )]
    OtherOrigin(ErrorBody),
}
