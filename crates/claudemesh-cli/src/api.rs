//! The typed client of the claudemesh API, over ureq (blocking, no async
//! runtime in the CLI). Bodies are the `claudemesh-api` wire types.
//!
//! Errors keep what a caller needs to decide (retry or not) and nothing
//! secret: the device code is part of the poll URL, so no error message ever
//! includes a request URL, only the server's base URL.
//!
//! A request refused for too many requests with this token (429
//! `rate_limited`) is asked once more after the server's `Retry-After`, up
//! to [`MAX_RATE_LIMIT_WAIT`], when it only reads; a change is never sent
//! twice, and its refusal goes back to the command.

use crate::base::exit::CliError;
use crate::base::http_agent;
use crate::base::output::Output;
use crate::telemetry::Telemetry;
use claudemesh_api::wire::{
    AcceptInviteRequest, AcceptedInvite, CreateInviteRequest, CreateMeshRequest, CreatedInvite,
    DeviceCodeRequest, DeviceCodeResponse, DevicePollResponse, InvitePreview, LogEntry, LogPage,
    MeshDetail, MeshList, MeshSummary, OkResponse, RegisterKeyRequest, RevokeRequest, SessionList,
    SlowDownBody, WhoAmIResponse,
};
use claudemesh_api::wire::{
    AddMemberRequest, ChangeGrantRequest, ChangeRoleRequest, DeletedMesh, GrantList, MemberList,
    MeshRole, PeerGrant, RenameMeshRequest,
};
use claudemesh_api::{ErrorBody, ErrorCode, Slug, Token};
use serde::de::DeserializeOwned;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Error bodies and API answers are small; refuse to buffer a runaway one.
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// The longest `Retry-After` a read waits out before asking again; a longer
/// one is reported instead. The server's own limit never asks for more than
/// a minute.
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The server's route templates this client calls (as in its OpenAPI
/// document): what `cli.api.error` reports instead of a URL.
pub mod route {
    pub const DEVICE_CODE: &str = "/api/auth/cli/device-code";
    pub const DEVICE_CODE_POLL: &str = "/api/auth/cli/device-code/{code}";
    pub const REVOKE: &str = "/api/auth/cli/revoke";
    pub const WHOAMI: &str = "/api/my/whoami";
    pub const SESSIONS: &str = "/api/my/cli/sessions";
    pub const MESHES: &str = "/api/my/meshes";
    pub const MESH: &str = "/api/my/meshes/{slug}";
    pub const MESH_KEYS: &str = "/api/my/meshes/{slug}/keys";
    pub const MESH_MEMBER: &str = "/api/my/meshes/{slug}/members/{member}";
    pub const MESH_INVITES: &str = "/api/my/meshes/{slug}/invites";
    pub const INVITE: &str = "/api/invites/{code}";
    pub const INVITE_ACCEPT: &str = "/api/invites/{code}/accept";
    pub const MESH_MEMBERS: &str = "/api/my/meshes/{slug}/members";
    pub const MESH_ARCHIVE: &str = "/api/my/meshes/{slug}/archive";
    pub const MESH_UNARCHIVE: &str = "/api/my/meshes/{slug}/unarchive";
    pub const MESH_GRANTS: &str = "/api/my/meshes/{slug}/grants";
    pub const MESH_GRANT: &str = "/api/my/meshes/{slug}/grants/{member}";
    pub const MESH_LOG: &str = "/api/my/meshes/{slug}/log";
    pub const MESH_LOG_STREAM: &str = "/api/my/meshes/{slug}/log/stream";

    #[cfg(test)]
    pub const ALL: [&str; 19] = [
        DEVICE_CODE,
        DEVICE_CODE_POLL,
        REVOKE,
        WHOAMI,
        SESSIONS,
        MESHES,
        MESH,
        MESH_KEYS,
        MESH_MEMBER,
        MESH_INVITES,
        INVITE,
        INVITE_ACCEPT,
        MESH_MEMBERS,
        MESH_ARCHIVE,
        MESH_UNARCHIVE,
        MESH_GRANTS,
        MESH_GRANT,
        MESH_LOG,
        MESH_LOG_STREAM,
    ];
}

/// A read of a mesh's log (`GET /api/my/meshes/{slug}/log`): each field
/// becomes the query parameter of its name.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    pub after: Option<String>,
    pub since_ms: Option<i64>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
}

/// A followed mesh log (`GET /api/my/meshes/{slug}/log/stream`): the
/// entries as the server sends them, read line by line off the open
/// response (Server-Sent Events).
pub struct LogFollow {
    lines: std::io::Lines<std::io::BufReader<ureq::BodyReader<'static>>>,
}

impl LogFollow {
    /// The next entry; `None` when the server ended the stream, an error
    /// when the connection broke or an event is not an entry.
    pub fn next_entry(&mut self) -> Option<Result<LogEntry, ApiError>> {
        let mut data = String::new();
        for line in self.lines.by_ref() {
            let line = match line {
                Ok(line) => line,
                Err(err) => return Some(Err(ApiError::Transport(err.to_string()))),
            };
            if let Some(rest) = line.strip_prefix("data:") {
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            } else if line.is_empty() && !data.is_empty() {
                return Some(
                    serde_json::from_str(&data).map_err(|err| ApiError::Decode(err.to_string())),
                );
            }
            // `event:`, `id:` (the entry's cursor, also in the data) and
            // `:` keep-alive comments need nothing.
        }
        None
    }
}

/// Why a request did not produce the expected answer.
#[derive(Debug)]
pub enum ApiError {
    /// No answer: connection refused, DNS, TLS, timeout.
    Transport(String),
    /// 429 on a device-code poll: wait this many seconds.
    SlowDown { interval: f64 },
    /// 429 `rate_limited`: too many requests with this token; the server
    /// accepts the next one after `retry_after` seconds, when it said.
    RateLimited {
        retry_after: Option<u64>,
        body: ErrorBody,
    },
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
            Self::SlowDown { .. } | Self::RateLimited { .. } | Self::Decode(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// How long to wait before asking again, when this is a refusal for too
    /// many requests whose wait is short enough to sit out.
    pub fn rate_limit_wait(&self) -> Option<Duration> {
        match self {
            Self::RateLimited {
                retry_after: Some(seconds),
                ..
            } => Some(Duration::from_secs(*seconds)).filter(|wait| *wait <= MAX_RATE_LIMIT_WAIT),
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
            Self::RateLimited { retry_after, body } => CliError::rate_limited(&body, retry_after),
            Self::Decode(detail) => CliError::failure(format!(
                "Unexpected answer from the server at {server} ({detail})"
            ))
            .with_hint("Is CLAUDEMESH_API_URL a claudemesh server? Is claudemesh up to date?"),
        }
    }
}

/// Describes a transport failure without echoing the request URL.
pub fn transport_detail(err: &ureq::Error) -> String {
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

/// A client for one server, with or without a bearer token.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<Token>,
    /// Where to say that a request waits (stderr, as every notice).
    out: Output,
    /// Where error answers are reported (`cli.api.error`).
    telemetry: Telemetry,
}

impl Api {
    pub fn new(base: &str, token: Option<Token>) -> Self {
        Self {
            agent: http_agent::agent(CONNECT_TIMEOUT, REQUEST_TIMEOUT),
            base: base.to_owned(),
            token,
            out: Output::from_env(false),
            telemetry: Telemetry::off(),
        }
    }

    /// Gives every request at most `within` (connecting included), for
    /// checks that must answer quickly (`doctor`).
    pub fn with_timeout(mut self, within: Duration) -> Self {
        self.agent = http_agent::agent(within.min(CONNECT_TIMEOUT), within);
        self
    }

    /// Error answers are reported to `telemetry` (by route template).
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.telemetry = telemetry.clone();
        self
    }

    /// Reports an error answer as `cli.api.error`: the route template
    /// (never the URL, which holds slugs, invite and device codes), the
    /// status and the error code. The result goes on as it came.
    fn reported<T>(
        &self,
        template: &'static str,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let answer = match &result {
            Err(ApiError::Status { status, body }) => Some((*status, body.as_ref())),
            Err(ApiError::RateLimited { body, .. }) => Some((429, Some(body))),
            _ => None,
        };
        if let Some((status, body)) = answer {
            self.telemetry
                .api_error(&self.base, template, status, body.map(|b| b.error));
        }
        result
    }

    /// Notices (a wait for the server's rate limit) go through `out`.
    pub fn with_output(mut self, out: &Output) -> Self {
        self.out = out.clone();
        self
    }

    /// Runs a request that only reads. Refused for too many requests with
    /// a short enough `Retry-After`, it says so, waits, and asks once more.
    fn read<T>(&self, request: impl Fn() -> Result<T, ApiError>) -> Result<T, ApiError> {
        retry_read(request, |wait| {
            self.out.warn(format!(
                "Too many requests with this token; waiting {} s…",
                wait.as_secs()
            ));
            std::thread::sleep(wait);
        })
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

    fn patch<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        self.prepare(self.agent.patch(self.url(path)))
            .send_json(body)
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
        self.reported(
            route::DEVICE_CODE,
            decode(self.post("/api/auth/cli/device-code", request)?),
        )
    }

    /// `GET /api/auth/cli/device-code/{device_code}?wait=N`: one poll, which
    /// the server may hold up to `wait` (whole seconds) and answer as soon as
    /// the code is decided; a server that does not know `wait` answers at
    /// once. A 429 is [`ApiError::SlowDown`] with the interval the server asks
    /// for.
    pub fn poll_device_code(
        &self,
        device_code: &str,
        wait: Duration,
    ) -> Result<DevicePollResponse, ApiError> {
        // The code is base32 from the server; refuse anything that would
        // change the path rather than sending it.
        if device_code.is_empty() || !device_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ApiError::Decode(
                "the server sent a malformed device code".into(),
            ));
        }
        let mut path = format!("/api/auth/cli/device-code/{device_code}");
        if wait.as_secs() > 0 {
            path.push_str(&format!("?wait={}", wait.as_secs()));
        }
        // The server may take the whole wait before it answers.
        let response = self
            .prepare(self.agent.get(self.url(&path)))
            .config()
            .timeout_global(Some(REQUEST_TIMEOUT + wait))
            .build()
            .call()
            .map_err(|err| ApiError::Transport(transport_detail(&err)))?;
        if response.status().as_u16() == 429 {
            let body = read_text(response)?;
            let interval = serde_json::from_str::<SlowDownBody>(&body)
                .map(|b| b.interval)
                .unwrap_or(0.0);
            return Err(ApiError::SlowDown { interval });
        }
        self.reported(route::DEVICE_CODE_POLL, decode(response))
    }

    /// `GET /api/my/whoami`.
    pub fn whoami(&self) -> Result<WhoAmIResponse, ApiError> {
        self.reported(
            route::WHOAMI,
            self.read(|| decode(self.get("/api/my/whoami")?)),
        )
    }

    /// `GET /api/my/cli/sessions`.
    pub fn sessions(&self) -> Result<SessionList, ApiError> {
        self.reported(
            route::SESSIONS,
            self.read(|| decode(self.get("/api/my/cli/sessions")?)),
        )
    }

    /// `POST /api/auth/cli/revoke`: revoke a token by possession (no other
    /// auth needed; the answer is the same whether or not it existed).
    pub fn revoke(&self, token: &Token) -> Result<OkResponse, ApiError> {
        let body = RevokeRequest {
            token: token.expose().to_owned(),
        };
        self.reported(
            route::REVOKE,
            decode(self.post("/api/auth/cli/revoke", &body)?),
        )
    }

    /// `POST /api/my/meshes`: create a mesh; the caller is its first admin.
    pub fn create_mesh(&self, request: &CreateMeshRequest) -> Result<MeshSummary, ApiError> {
        self.reported(route::MESHES, decode(self.post("/api/my/meshes", request)?))
    }

    /// `GET /api/my/meshes`: every mesh the account belongs to.
    pub fn meshes(&self) -> Result<MeshList, ApiError> {
        self.reported(
            route::MESHES,
            self.read(|| decode(self.get("/api/my/meshes")?)),
        )
    }

    /// `GET /api/my/meshes/{slug}`: a mesh with its members and their keys.
    pub fn mesh(&self, slug: &Slug) -> Result<MeshDetail, ApiError> {
        self.reported(
            route::MESH,
            self.read(|| decode(self.get(&format!("/api/my/meshes/{slug}"))?)),
        )
    }

    /// `GET /api/my/meshes/{slug}/log`: a page of the mesh's log.
    pub fn mesh_log(&self, slug: &Slug, read: &LogRead) -> Result<LogPage, ApiError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(after) = &read.after {
            query.push(("after", after.clone()));
        }
        if let Some(since) = read.since_ms {
            query.push(("since_ms", since.to_string()));
        }
        if let Some(kind) = &read.kind {
            query.push(("kind", kind.clone()));
        }
        if let Some(limit) = read.limit {
            query.push(("limit", limit.to_string()));
        }
        let path = format!("/api/my/meshes/{slug}/log");
        self.reported(
            route::MESH_LOG,
            self.read(|| {
                let request = self.prepare(self.agent.get(self.url(&path)));
                let request = query
                    .iter()
                    .fold(request, |request, (key, value)| request.query(*key, value));
                decode(
                    request
                        .call()
                        .map_err(|err| ApiError::Transport(transport_detail(&err)))?,
                )
            }),
        )
    }

    /// `GET /api/my/meshes/{slug}/log/stream`: follows the mesh's log from
    /// after `after` (a cursor, sent as `Last-Event-ID`), or from now.
    /// The connection has no overall time limit (it lasts as long as the
    /// follow), only the connect one.
    pub fn follow_log(
        &self,
        slug: &Slug,
        after: Option<&str>,
        kind: Option<&str>,
    ) -> Result<LogFollow, ApiError> {
        let agent = http_agent::streaming_agent(CONNECT_TIMEOUT);
        let mut request = agent
            .get(self.url(&format!("/api/my/meshes/{slug}/log/stream")))
            .header("accept", "text/event-stream");
        if let Some(bearer) = self.bearer() {
            request = request.header("authorization", bearer);
        }
        if let Some(after) = after {
            request = request.header("last-event-id", after);
        }
        if let Some(kind) = kind {
            request = request.query("kind", kind);
        }
        let response = request
            .call()
            .map_err(|err| ApiError::Transport(transport_detail(&err)))?;
        if !response.status().is_success() {
            let refused = match decode::<serde::de::IgnoredAny>(response) {
                Err(err) => err,
                Ok(_) => ApiError::Decode("a success status that is not a stream".into()),
            };
            return self.reported(route::MESH_LOG_STREAM, Err(refused));
        }
        let reader = response.into_body().into_reader();
        Ok(LogFollow {
            lines: std::io::BufRead::lines(std::io::BufReader::new(reader)),
        })
    }

    /// `POST /api/my/meshes/{slug}/keys`: add this machine's public key to
    /// the caller's membership (idempotent).
    pub fn register_key(&self, slug: &Slug, public_key: &str) -> Result<OkResponse, ApiError> {
        let body = RegisterKeyRequest {
            public_key: public_key.to_owned(),
        };
        self.reported(
            route::MESH_KEYS,
            decode(self.post(&format!("/api/my/meshes/{slug}/keys"), &body)?),
        )
    }

    /// `DELETE /api/my/meshes/{slug}/members/me`: leave a mesh.
    pub fn leave_mesh(&self, slug: &Slug) -> Result<OkResponse, ApiError> {
        self.reported(
            route::MESH_MEMBER,
            decode(self.delete(&format!("/api/my/meshes/{slug}/members/me"))?),
        )
    }

    /// `POST /api/my/meshes/{slug}/invites` (admins only).
    pub fn create_invite(
        &self,
        slug: &Slug,
        request: &CreateInviteRequest,
    ) -> Result<CreatedInvite, ApiError> {
        self.reported(
            route::MESH_INVITES,
            decode(self.post(&format!("/api/my/meshes/{slug}/invites"), request)?),
        )
    }

    /// `GET /api/invites/{code}`: what an invite leads to (no sign-in needed).
    pub fn preview_invite(&self, code: &InviteCode) -> Result<InvitePreview, ApiError> {
        self.reported(
            route::INVITE,
            self.read(|| decode(self.get(&format!("/api/invites/{}", code.as_str()))?)),
        )
    }

    /// `POST /api/invites/{code}/accept`: join with this machine's key.
    pub fn accept_invite(
        &self,
        code: &InviteCode,
        request: &AcceptInviteRequest,
    ) -> Result<AcceptedInvite, ApiError> {
        self.reported(
            route::INVITE_ACCEPT,
            decode(self.post(&format!("/api/invites/{}/accept", code.as_str()), request)?),
        )
    }

    // ------------------------------------------------------------ governance

    /// `GET /api/my/meshes/{slug}/members`: members and pending invites.
    pub fn members(&self, slug: &Slug) -> Result<MemberList, ApiError> {
        self.reported(
            route::MESH_MEMBERS,
            self.read(|| decode(self.get(&format!("/api/my/meshes/{slug}/members"))?)),
        )
    }

    /// `POST /api/my/meshes/{slug}/members`: invite a person by email.
    pub fn add_member(
        &self,
        slug: &Slug,
        request: &AddMemberRequest,
    ) -> Result<CreatedInvite, ApiError> {
        self.reported(
            route::MESH_MEMBERS,
            decode(self.post(&format!("/api/my/meshes/{slug}/members"), request)?),
        )
    }

    /// `DELETE /api/my/meshes/{slug}/members/{member}`: remove a member.
    pub fn remove_member(&self, slug: &Slug, member_id: &str) -> Result<OkResponse, ApiError> {
        self.reported(
            route::MESH_MEMBER,
            decode(self.delete(&format!("/api/my/meshes/{slug}/members/{member_id}"))?),
        )
    }

    /// `PATCH /api/my/meshes/{slug}/members/{member}`: change a role.
    pub fn change_role(
        &self,
        slug: &Slug,
        member_id: &str,
        role: MeshRole,
    ) -> Result<OkResponse, ApiError> {
        self.reported(
            route::MESH_MEMBER,
            decode(self.patch(
                &format!("/api/my/meshes/{slug}/members/{member_id}"),
                &ChangeRoleRequest { role },
            )?),
        )
    }

    /// `PATCH /api/my/meshes/{slug}`: rename a mesh.
    pub fn rename_mesh(&self, slug: &Slug, name: &str) -> Result<MeshSummary, ApiError> {
        let body = RenameMeshRequest {
            name: name.to_owned(),
        };
        self.reported(
            route::MESH,
            decode(self.patch(&format!("/api/my/meshes/{slug}"), &body)?),
        )
    }

    /// `POST /api/my/meshes/{slug}/archive` or `/unarchive`.
    pub fn set_archived(&self, slug: &Slug, archived: bool) -> Result<MeshSummary, ApiError> {
        let (route, verb) = if archived {
            (route::MESH_ARCHIVE, "archive")
        } else {
            (route::MESH_UNARCHIVE, "unarchive")
        };
        self.reported(
            route,
            decode(self.post(
                &format!("/api/my/meshes/{slug}/{verb}"),
                &serde_json::json!({}),
            )?),
        )
    }

    /// `GET /api/my/meshes/{slug}/grants`: what I allow, what I am allowed.
    pub fn grants(&self, slug: &Slug) -> Result<GrantList, ApiError> {
        self.reported(
            route::MESH_GRANTS,
            self.read(|| decode(self.get(&format!("/api/my/meshes/{slug}/grants"))?)),
        )
    }

    /// `PATCH /api/my/meshes/{slug}/grants/{member}`: change what a peer may do to me.
    pub fn change_grant(
        &self,
        slug: &Slug,
        member_id: &str,
        request: &ChangeGrantRequest,
    ) -> Result<PeerGrant, ApiError> {
        self.reported(
            route::MESH_GRANT,
            decode(self.patch(
                &format!("/api/my/meshes/{slug}/grants/{member_id}"),
                request,
            )?),
        )
    }

    /// `DELETE /api/my/meshes/{slug}`: delete a mesh for good.
    pub fn delete_mesh(&self, slug: &Slug) -> Result<DeletedMesh, ApiError> {
        self.reported(
            route::MESH,
            decode(self.delete(&format!("/api/my/meshes/{slug}"))?),
        )
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

/// `request`, and once more after the wait a `rate_limited` refusal asks
/// for (`wait` does the waiting), if it is short enough.
fn retry_read<T>(
    mut request: impl FnMut() -> Result<T, ApiError>,
    wait: impl FnOnce(Duration),
) -> Result<T, ApiError> {
    match request() {
        Err(err) => match err.rate_limit_wait() {
            Some(delay) => {
                wait(delay);
                request()
            }
            None => Err(err),
        },
        answer => answer,
    }
}

/// A success body as `T`; an error status as [`ApiError::Status`], or
/// [`ApiError::RateLimited`] with the `Retry-After` seconds.
fn decode<T: DeserializeOwned>(response: ureq::http::Response<ureq::Body>) -> Result<T, ApiError> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let text = read_text(response)?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|err| ApiError::Decode(err.to_string()));
    }
    let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
    match body {
        Some(body) if status == 429 && body.error == ErrorCode::RateLimited => {
            Err(ApiError::RateLimited { retry_after, body })
        }
        body => Err(ApiError::Status { status, body }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::exit::Exit;

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

    fn rate_limited(retry_after: Option<u64>) -> ApiError {
        ApiError::RateLimited {
            retry_after,
            body: ErrorBody {
                error: ErrorCode::RateLimited,
                message: "Too many requests with this token: at most 100 a minute".into(),
                suggestion: None,
            },
        }
    }

    #[test]
    fn a_read_refused_for_too_many_requests_waits_as_told_and_asks_once_more() {
        use std::cell::Cell;
        let calls = Cell::new(0);
        let waited = Cell::new(None);
        let answer = retry_read(
            || {
                calls.set(calls.get() + 1);
                if calls.get() == 1 {
                    Err(rate_limited(Some(12)))
                } else {
                    Ok("answer")
                }
            },
            |wait| waited.set(Some(wait)),
        );
        assert_eq!(answer.unwrap(), "answer");
        assert_eq!(calls.get(), 2);
        assert_eq!(waited.get(), Some(Duration::from_secs(12)));

        // Refused again: that refusal is the answer, with no third try.
        calls.set(0);
        let answer = retry_read(
            || {
                calls.set(calls.get() + 1);
                Err::<(), _>(rate_limited(Some(1)))
            },
            |_| {},
        );
        assert!(matches!(answer, Err(ApiError::RateLimited { .. })));
        assert_eq!(calls.get(), 2);

        // A wait over a minute, no Retry-After, or another error: no wait.
        for err in [
            rate_limited(Some(61)),
            rate_limited(None),
            ApiError::Status {
                status: 429,
                body: None,
            },
            ApiError::Transport("refused".into()),
        ] {
            calls.set(0);
            let mut err = Some(err);
            let answer = retry_read(
                || {
                    calls.set(calls.get() + 1);
                    Err::<(), _>(err.take().expect("asked once only"))
                },
                |_| panic!("no wait"),
            );
            assert!(answer.is_err());
            assert_eq!(calls.get(), 1);
        }
    }

    #[test]
    fn a_rate_limited_refusal_says_when_to_try_again() {
        let err = rate_limited(Some(30)).into_cli("http://s");
        assert_eq!(err.exit, Exit::Failure);
        assert_eq!(
            err.message,
            "Too many requests with this token: at most 100 a minute"
        );
        assert_eq!(err.hint.as_deref(), Some("Try again in 30 seconds."));
        let err = rate_limited(None).into_cli("http://s");
        assert_eq!(err.hint.as_deref(), Some("Wait a minute and try again."));
        assert!(!rate_limited(Some(1)).is_transient());
        assert_eq!(rate_limited(Some(1)).status(), Some(429));
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
                matches!(
                    api.poll_device_code(bad, Duration::ZERO),
                    Err(ApiError::Decode(_))
                ),
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
    fn telemetry_gets_route_templates_never_urls() {
        for template in route::ALL {
            assert!(
                claudemesh_api::telemetry::is_route_template(template),
                "{template}"
            );
        }
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
