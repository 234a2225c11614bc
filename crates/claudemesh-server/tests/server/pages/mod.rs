//! The browser pages over real HTTP. Servers come from the testkit (real
//! router, random port, fresh database, frozen clock); the "browser" is a
//! cookie-keeping HTTP client that does not follow redirects, so each test
//! sees every `Location`.

mod bad_input;
mod browser;
mod cli_auth;
mod credential_mail;
mod dashboard;
mod languages;
mod mesh_admin;
mod meshes;
mod security;
mod sign_in;
