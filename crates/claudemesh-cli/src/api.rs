//! The typed client of the claudemesh API, over ureq (blocking, no async
//! runtime in the CLI). Bodies are the `claudemesh-api` wire types.
//!
//! Errors keep what a caller needs to decide (retry or not) and nothing
//! secret: the device code is part of the poll URL, so no error message ever
//! includes a request URL, only the server's base URL.

use crate::exit::CliError;
use claudemesh_api::wire::{
    AcceptInviteRequest, AcceptedInvite, CreateInviteRequest, CreateMeshRequest, CreatedInvite,
    DeviceCodeRequest, DeviceCodeResponse, DevicePollResponse, InvitePreview, MeshDetail, MeshList,
    MeshSummary, OkResponse, RegisterKeyRequest, RevokeRequest, SessionList, SlowDownBody,
    WhoAmIResponse,
};
use claudemesh_api::{ErrorBody, Slug, Token};
use serde::de::DeserializeOwned;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://claudemesh.com";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Error bodies and API answers are small; refuse to buffer a runaway one.
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// Why a request did not produce the expected answer.
#[derive(Debug)]
pub enum ApiError {
    /// No answer: connection refused, DNS, TLS, timeout.
    Transport(String),
    /// 429 on a device-code poll: wait this many seconds.
    SlowDown { interval: f64 },
    /// An error status; `body` when it was the API's JSON error shape.
    Status {
        status: u16,
        body: Option<ErrorBody>,
    },
    /// A success status with a body that is not what the contract says.
    Decode(String),
}

impl ApiError {
    /// Worth retrying later: the server was unreachable or failing.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 500..=599),
            Self::SlowDown { .. } | Self::Decode(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What to tell the user, given which server was asked.
    pub fn into_cli(self, server: &str) -> CliError {
        match self {
            Self::Transport(detail) => CliError::unreachable(server, &detail),
            Self::SlowDown { .. } => CliError::failure("The server asked to slow down")
                .with_hint("Wait a little and try again."),
            Self::Status { status, body } => CliError::from_api(status, body.as_ref()),
            Self::Decode(detail) => CliError::failure(format!(
                "Unexpected answer from the server at {server} ({detail})"
            ))
            .with_hint("Is CLAUDEMESH_API_URL a claudemesh server? Is claudemesh up to date?"),
        }
    }
}

/// Describes a transport failure without echoing the request URL.
fn transport_detail(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Io(io) => {
            // "Connection refused (os error 111)" reads better without the number.
            let text = io.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_owned(),
                None => text,
            }
        }
        ureq::Error::Timeout(_) => "timed out".to_owned(),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::BadUri(_) => "invalid server URL".to_owned(),
        ureq::Error::Tls(detail) => format!("TLS: {detail}"),
        ureq::Error::Rustls(rustls) => format!("TLS: {rustls}"),
        ureq::Error::Protocol(_) => "the server did not speak HTTP".to_owned(),
        other => other.to_string(),
    }
}

/// Checks a server URL given by the user: http(s), no trailing slash.
pub fn normalize_base_url(raw: &str) -> Result<String, CliError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(CliError::invalid_args(format!(
            "The server URL {raw:?} must start with https:// or http://"
        ))
        .with_hint("Check CLAUDEMESH_API_URL or --api-url.")),
    }
}

/// A client for one server, with or without a bearer token.
pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<Token>,
}

impl Api {
    pub fn new(base: &str, token: Option<Token>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(format!(
                "claudemesh-cli/{} ({}; {})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH
            ))
            .build();
        Self {
            agent: config.new_agent(),
            base: base.to_owned(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> Option<String> {
        self.token
            .as_ref()
            .map(|token| format!("Bearer {}", token.expose()))
    }

    /// Asks for JSON, with the bearer token when there is one.
    fn prepare<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request.header("accept", "application/json");
        match self.bearer() {
            Some(bearer) => request.header("authorization", bearer),
            None => request,
        }
    }

    fn get(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        self.prepare(self.agent.get(self.url(path)))
            .call()
            .map_err(|err| ApiError::Transport(transport_detail(&err)))
    }

    fn delete(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        self.prepare(self.agent.delete(self.url(path)))
            .call()
            .map_err(|err| ApiError::Transport(transport_detail(&err)))
    }

    fn post<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        self.prepare(self.agent.post(self.url(path)))
            .send_json(body)
            .map_err(|err| ApiError::Transport(transport_detail(&err)))
    }

    /// `POST /api/auth/cli/device-code`: start a login.
    pub fn request_device_code(
        &self,
        request: &DeviceCodeRequest,
    ) -> Result<DeviceCodeResponse, ApiError> {
        decode(self.post("/api/auth/cli/device-code", request)?)
    }

    /// `GET /api/auth/cli/device-code/{device_code}`: one poll. A 429 is
    /// [`ApiError::SlowDown`] with the interval the server asks for.
    pub fn poll_device_code(&self, device_code: &str) -> Result<DevicePollResponse, ApiError> {
        // The code is base32 from the server; refuse anything that would
        // change the path rather than sending it.
        if device_code.is_empty() || !device_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiError::Decode(
                "the server sent a malformed device code".into(),
            ));
        }
        let response = self.get(&format!("/api/auth/cli/device-code/{device_code}"))?;
        if response.status().as_u16() == 429 {
            let body = read_text(response)?;
            let interval = serde_json::from_str::<SlowDownBody>(&body)
                .map(|b| b.interval)
                .unwrap_or(0.0);
            return Err(ApiError::SlowDown { interval });
        }
        decode(response)
    }

    /// `GET /api/my/whoami`.
    pub fn whoami(&self) -> Result<WhoAmIResponse, ApiError> {
        decode(self.get("/api/my/whoami")?)
    }

    /// `GET /api/my/cli/sessions`.
    pub fn sessions(&self) -> Result<SessionList, ApiError> {
        decode(self.get("/api/my/cli/sessions")?)
    }

    /// `POST /api/auth/cli/revoke`: revoke a token by possession (no other
    /// auth needed; the answer is the same whether or not it existed).
    pub fn revoke(&self, token: &Token) -> Result<OkResponse, ApiError> {
        let body = RevokeRequest {
            token: token.expose().to_owned(),
        };
        decode(self.post("/api/auth/cli/revoke", &body)?)
    }

    /// `POST /api/my/meshes`: create a mesh; the caller is its first admin.
    pub fn create_mesh(&self, request: &CreateMeshRequest) -> Result<MeshSummary, ApiError> {
        decode(self.post("/api/my/meshes", request)?)
    }

    /// `GET /api/my/meshes`: every mesh the account belongs to.
    pub fn meshes(&self) -> Result<MeshList, ApiError> {
        decode(self.get("/api/my/meshes")?)
    }

    /// `GET /api/my/meshes/{slug}`: a mesh with its members and their keys.
    pub fn mesh(&self, slug: &Slug) -> Result<MeshDetail, ApiError> {
        decode(self.get(&format!("/api/my/meshes/{slug}"))?)
    }

    /// `POST /api/my/meshes/{slug}/keys`: add this machine's public key to
    /// the caller's membership (idempotent).
    pub fn register_key(&self, slug: &Slug, public_key: &str) -> Result<OkResponse, ApiError> {
        let body = RegisterKeyRequest {
            public_key: public_key.to_owned(),
        };
        decode(self.post(&format!("/api/my/meshes/{slug}/keys"), &body)?)
    }

    /// `DELETE /api/my/meshes/{slug}/members/me`: leave a mesh.
    pub fn leave_mesh(&self, slug: &Slug) -> Result<OkResponse, ApiError> {
        decode(self.delete(&format!("/api/my/meshes/{slug}/members/me"))?)
    }

    /// `POST /api/my/meshes/{slug}/invites` (admins only).
    pub fn create_invite(
        &self,
        slug: &Slug,
        request: &CreateInviteRequest,
    ) -> Result<CreatedInvite, ApiError> {
        decode(self.post(&format!("/api/my/meshes/{slug}/invites"), request)?)
    }

    /// `GET /api/invites/{code}`: what an invite leads to (no sign-in needed).
    pub fn preview_invite(&self, code: &InviteCode) -> Result<InvitePreview, ApiError> {
        decode(self.get(&format!("/api/invites/{}", code.as_str()))?)
    }

    /// `POST /api/invites/{code}/accept`: join with this machine's key.
    pub fn accept_invite(
        &self,
        code: &InviteCode,
        request: &AcceptInviteRequest,
    ) -> Result<AcceptedInvite, ApiError> {
        decode(self.post(&format!("/api/invites/{}/accept", code.as_str()), request)?)
    }
}

/// An invite code, taken from a whole invite link (`…/i/<code>`) or given
/// bare. Only letters and digits, so it can go into a request path as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCode {
    code: String,
    /// The scheme and host of the link it came from, if it was a link.
    origin: Option<String>,
}

impl InviteCode {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (origin, path) = match text.split_once("://") {
            Some((scheme, rest)) => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                (
                    Some(format!("{}://{host}", scheme.to_ascii_lowercase())),
                    path,
                )
            }
            None => (None, text),
        };
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let code = path.trim_end_matches('/').rsplit('/').next()?;
        let valid =
            (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| Self {
            code: code.to_owned(),
            origin,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// `https://host[:port]` when the code came from a link.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }
}

fn read_text(mut response: ureq::http::Response<ureq::Body>) -> Result<String, ApiError> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_string()
        .map_err(|err| ApiError::Transport(transport_detail(&err)))
}

/// A success body as `T`; an error status as [`ApiError::Status`].
fn decode<T: DeserializeOwned>(response: ureq::http::Response<ureq::Body>) -> Result<T, ApiError> {
    let status = response.status().as_u16();
    let text = read_text(response)?;
    if (200..300).contains(&status) {
        serde_json::from_str(&text).map_err(|err| ApiError::Decode(err.to_string()))
    } else {
        Err(ApiError::Status {
            status,
            body: serde_json::from_str(&text).ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    #[test]
    fn server_urls_must_be_http_and_lose_their_trailing_slash() {
        assert_eq!(
            normalize_base_url("https://claudemesh.com/").unwrap(),
            "https://claudemesh.com"
        );
        assert_eq!(
            normalize_base_url(" http://127.0.0.1:3000 ").unwrap(),
            "http://127.0.0.1:3000"
        );
        for bad in ["claudemesh.com", "ftp://x", "https://", "", "http://a b"] {
            assert_eq!(
                normalize_base_url(bad).unwrap_err().exit,
                Exit::InvalidArgs,
                "{bad}"
            );
        }
    }

    #[test]
    fn only_unreachable_or_failing_servers_are_retried() {
        assert!(ApiError::Transport("refused".into()).is_transient());
        for status in [500, 502, 503, 504, 408] {
            assert!(
                ApiError::Status { status, body: None }.is_transient(),
                "{status}"
            );
        }
        for status in [400, 401, 404, 409] {
            assert!(
                !ApiError::Status { status, body: None }.is_transient(),
                "{status}"
            );
        }
        assert!(!ApiError::Decode("x".into()).is_transient());
    }

    #[test]
    fn transport_errors_become_network_exits_naming_the_server() {
        let err = ApiError::Transport("connection refused".into()).into_cli("http://127.0.0.1:9");
        assert_eq!(err.exit, Exit::Network);
        assert!(err.message.contains("http://127.0.0.1:9"));
        assert!(err.message.contains("connection refused"));
    }

    #[test]
    fn a_malformed_device_code_is_never_put_in_a_path() {
        let api = Api::new("http://127.0.0.1:9", None);
        for bad in ["", "../my/whoami", "abc?x=1", "a/b"] {
            assert!(
                matches!(api.poll_device_code(bad), Err(ApiError::Decode(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn invite_codes_come_from_links_or_bare_and_never_carry_a_path() {
        let code = |text: &str| InviteCode::parse(text).map(|c| c.as_str().to_owned());
        for text in [
            "https://claudemesh.com/i/k3xq9a2bmvjp3",
            "https://claudemesh.com/i/k3xq9a2bmvjp3/",
            "  https://claudemesh.com/i/k3xq9a2bmvjp3?utm=x#top ",
            "k3xq9a2bmvjp3",
        ] {
            assert_eq!(code(text).as_deref(), Some("k3xq9a2bmvjp3"), "{text}");
        }
        assert_eq!(
            InviteCode::parse("HTTP://127.0.0.1:3000/i/abc")
                .unwrap()
                .origin(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(InviteCode::parse("abc").unwrap().origin(), None);
        for bad in [
            "",
            "https://claudemesh.com/",
            "a b",
            "..",
            "%2e%2e",
            "https://x/i/a.b",
        ] {
            assert_eq!(code(bad), None, "{bad}");
        }
        // Only the last segment is ever used.
        assert_eq!(code("../../my/whoami").as_deref(), Some("whoami"));
    }

    #[test]
    fn nothing_listens_means_a_transport_error() {
        // Port 9 (discard) on loopback: nothing listens in a test sandbox.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let api = Api::new(&format!("http://127.0.0.1:{port}"), None);
        assert!(matches!(api.whoami(), Err(ApiError::Transport(_))));
    }
}
