//! A test double of Claude Code, for the tests of `claudemesh launch` and
//! `claudemesh mcp` (`tests/cli/launch.rs` runs it as
//! `CLAUDEMESH_CLAUDE_BIN`).
//!
//! It does what Claude Code does with what `launch` gives it, and reports
//! each step on stdout as one JSON object per line:
//!
//! 1. `{"event":"started","argv":[...],"env":{...}}`: its arguments, and
//!    `CLAUDEMESH_CONFIG_DIR` and `CLAUDEMESH_DISPLAY_NAME` (null when unset).
//! 2. `{"event":"args",...}`: the arguments parsed as Claude Code's
//!    Commander options would be: `--mcp-config <configs...>` and
//!    `--dangerously-load-development-channels <servers...>` take values
//!    until the next `-`-prefixed argument, `--` ends the options, and what
//!    is left is positional (`prompt` is the first). An option Claude Code
//!    does not have is a usage error (`{"event":"usage_error"}`, exit 1), as
//!    it is for Claude Code.
//! 3. `{"event":"mcp_config","servers":{...}}`: the MCP servers of the
//!    configurations given (a file, or JSON text).
//! 4. `{"event":"initialized",...}` and `{"event":"tools",...}`: it starts the
//!    `claudemesh` server of that configuration (its command, args and env)
//!    as an MCP client over the child's stdio, the way Claude Code 2.1
//!    connects: a `server/discover` probe for 2026-07-28 first; a server that
//!    offers it is used on that protocol (`"era":"modern"`), else the
//!    `initialize` handshake follows on the same connection
//!    (`"era":"legacy"`). It reports the era, the server's name, its
//!    `experimental` capability keys, its instructions, and its tools with
//!    their input schemas. Any failure there is
//!    `{"event":"mcp_error","message":...}`, and the double goes on without
//!    a server.
//!
//! `--version` alone prints `2.1.332 (Claude Code)` (or
//! `$FAKE_CLAUDE_VERSION`) and exits, as Claude Code does.
//!
//! Then it obeys JSON commands read line by line from stdin:
//! - `{"call": TOOL, "args": {...}}` →
//!   `{"event":"result","tool":..,"is_error":..,"text":..}` (with `"error"`
//!   instead when the call itself failed at the protocol level);
//! - `{"wait": "notification", "timeout_ms": N}` → the next
//!   `notifications/claude/channel` received, `{"event":"notification",
//!   "params":...}` with its params exactly as sent, or `{"event":"timeout"}`;
//! - `{"permission_request": {"request_id":…, "tool_name":…, "description":…,
//!   "input_preview":…}}` → sends it to the server as
//!   `notifications/claude/channel/permission_request`, as Claude Code does
//!   when it would ask the person at the terminal, and reports
//!   `{"event":"permission_request_sent"}`, or
//!   `{"event":"permission_request_skipped","why":…}` when Claude Code would
//!   not relay to this server (not a channel, or no
//!   `experimental["claude/channel/permission"]` capability);
//! - `{"wait": "permission", "timeout_ms": N}` → the next
//!   `notifications/claude/channel/permission` verdict received from such a
//!   server, `{"event":"permission","params":...}`, or `{"event":"timeout"}`;
//! - `{"exit": CODE}` → stops the MCP server as Claude Code does (closes its
//!   stdin, waits, then signals it), prints `{"event":"exiting","code":..,
//!   "mcp_stopped_after_ms":..}` and exits with CODE. End of stdin is
//!   `{"exit": 0}`.
//!
//! Like Claude Code, it keeps a channel notification only when the server
//! is loaded as a channel (`server:claudemesh` among the
//! `--dangerously-load-development-channels` values), declares the
//! `experimental["claude/channel"]` capability, and was connected in the
//! legacy era (Claude Code has no path for channels on the modern one);
//! others are dropped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test double of Claude Code: a failure stops the test that runs it"
)]

use rmcp::model::{
    CallToolRequestParams, ClientConfig, ClientJsonRpcMessage, ClientNotification, ClientRequest,
    CustomNotification, DiscoverRequest, DiscoverRequestParams, Implementation, NumberOrString,
    ProtocolVersion, RequestMetaObject,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, Peer, RunningService,
};
use rmcp::transport::{TokioChildProcess, Transport};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// The MCP server the double starts: the one `launch` names.
const SERVER_NAME: &str = "claudemesh";
const CHANNEL_METHOD: &str = "notifications/claude/channel";
const CHANNEL_CAPABILITY: &str = "claude/channel";
const PERMISSION_CAPABILITY: &str = "claude/channel/permission";
const PERMISSION_REQUEST_METHOD: &str = "notifications/claude/channel/permission_request";
const PERMISSION_METHOD: &str = "notifications/claude/channel/permission";
/// The protocol revision Claude Code asks for in `initialize`.
const LEGACY_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_11_25;
/// The revision Claude Code first probes for with `server/discover`.
const MODERN_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2026_07_28;
/// How long the MCP server has to start and answer `initialize`.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long `exit` waits for the MCP server to stop.
const STOP_LIMIT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------ output

/// One JSON object on a line of its own, flushed.
fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

// --------------------------------------------------------------- arguments

/// How an option of Claude Code's takes values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A flag.
    Nothing,
    /// `<value>`: the next argument, whatever it is.
    One,
    /// `[value]`: the next argument unless it starts with `-`.
    Optional,
    /// `<values...>`: arguments until the next one starting with `-`.
    Many,
}

/// The options of Claude Code's command line this double knows, by every
/// name they go by, with the name they are reported under.
fn option(name: &str) -> Option<(&'static str, Takes)> {
    Some(match name {
        "--mcp-config" => ("mcp-config", Takes::Many),
        "--dangerously-load-development-channels" => {
            ("dangerously-load-development-channels", Takes::Many)
        }
        "--allowedTools" | "--allowed-tools" => ("allowed-tools", Takes::Many),
        "--disallowedTools" | "--disallowed-tools" => ("disallowed-tools", Takes::Many),
        "--add-dir" => ("add-dir", Takes::Many),
        "--betas" => ("betas", Takes::Many),
        "--model" => ("model", Takes::One),
        "--fallback-model" => ("fallback-model", Takes::One),
        "--session-id" => ("session-id", Takes::One),
        "--settings" => ("settings", Takes::One),
        "--setting-sources" => ("setting-sources", Takes::One),
        "--permission-mode" => ("permission-mode", Takes::One),
        "--permission-prompt-tool" => ("permission-prompt-tool", Takes::One),
        "--permission-prompts" => ("permission-prompts", Takes::One),
        "--system-prompt" => ("system-prompt", Takes::One),
        "--append-system-prompt" => ("append-system-prompt", Takes::One),
        "--output-format" => ("output-format", Takes::One),
        "--input-format" => ("input-format", Takes::One),
        "--agents" => ("agents", Takes::One),
        "-r" | "--resume" => ("resume", Takes::Optional),
        "-d" | "--debug" => ("debug", Takes::Optional),
        "-c" | "--continue" => ("continue", Takes::Nothing),
        "-p" | "--print" => ("print", Takes::Nothing),
        "--dangerously-skip-permissions" => ("dangerously-skip-permissions", Takes::Nothing),
        "--verbose" => ("verbose", Takes::Nothing),
        "--strict-mcp-config" => ("strict-mcp-config", Takes::Nothing),
        "--fork-session" => ("fork-session", Takes::Nothing),
        "--ide" => ("ide", Takes::Nothing),
        _ => return None,
    })
}

fn looks_like_option(arg: &str) -> bool {
    arg.len() > 1 && arg.starts_with('-')
}

/// Claude Code's command line, parsed.
#[derive(Default)]
struct Parsed {
    /// Every option given: a flag is `true`, an optional value not given is
    /// `true`, a value is a string, a variadic option the list of its values
    /// (over all its occurrences).
    options: BTreeMap<&'static str, Value>,
    positionals: Vec<String>,
}

impl Parsed {
    fn values(&self, name: &str) -> Vec<String> {
        match self.options.get(name) {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn report(&self) -> Value {
        json!({
            "event": "args",
            "mcp_config": self.values("mcp-config"),
            "channels": self.values("dangerously-load-development-channels"),
            "resume": self.options.get("resume").cloned().unwrap_or(Value::Null),
            "continue": self.options.contains_key("continue"),
            "dangerously_skip_permissions": self.options.contains_key("dangerously-skip-permissions"),
            "options": self.options,
            "prompt": self.positionals.first(),
            "positionals": self.positionals,
        })
    }
}

fn parse_args(argv: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut rest = argv.iter().peekable();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            parsed.positionals.extend(rest.by_ref().cloned());
            break;
        }
        if !looks_like_option(arg) {
            parsed.positionals.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let Some((key, takes)) = option(name) else {
            return Err(format!("error: unknown option '{arg}'"));
        };
        let value = match (takes, inline) {
            (Takes::Nothing, Some(_)) => {
                return Err(format!("error: option '{name}' does not take a value"));
            }
            (Takes::Nothing, None) => Value::Bool(true),
            (Takes::Many, Some(value)) => Value::Array(vec![Value::String(value)]),
            (_, Some(value)) => Value::String(value),
            (Takes::One, None) => match rest.next() {
                Some(value) => Value::String(value.clone()),
                None => return Err(format!("error: option '{name} <value>' argument missing")),
            },
            (Takes::Optional, None) => match rest.next_if(|next| !looks_like_option(next)) {
                Some(value) => Value::String(value.clone()),
                None => Value::Bool(true),
            },
            (Takes::Many, None) => {
                let mut values = Vec::new();
                while let Some(value) = rest.next_if(|next| !looks_like_option(next)) {
                    values.push(Value::String(value.clone()));
                }
                if values.is_empty() {
                    return Err(format!(
                        "error: option '{name} <values...>' argument missing"
                    ));
                }
                Value::Array(values)
            }
        };
        match (parsed.options.get_mut(key), value) {
            (Some(Value::Array(earlier)), Value::Array(more)) => earlier.extend(more),
            (_, value) => {
                parsed.options.insert(key, value);
            }
        }
    }
    Ok(parsed)
}

// -------------------------------------------------------------- MCP config

/// The `mcpServers` of every `--mcp-config` value (a file, or JSON text),
/// later ones winning.
fn mcp_servers(configs: &[String]) -> Result<Map<String, Value>, String> {
    let mut servers = Map::new();
    for config in configs {
        let text = if config.trim_start().starts_with('{') {
            config.clone()
        } else {
            std::fs::read_to_string(config).map_err(|err| format!("cannot read {config}: {err}"))?
        };
        let json: Value =
            serde_json::from_str(&text).map_err(|err| format!("{config} is not JSON: {err}"))?;
        let Some(found) = json.get("mcpServers").and_then(Value::as_object) else {
            return Err(format!("{config} has no mcpServers object"));
        };
        servers.extend(found.clone());
    }
    Ok(servers)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------- MCP client

/// The client side: the channel notifications, queued for `wait`.
struct Handler {
    /// Whether Claude Code loaded this server as a channel, in the legacy
    /// era (what it declares is read from its initialize result).
    channel_listed: bool,
    notifications: mpsc::UnboundedSender<Value>,
    verdicts: mpsc::UnboundedSender<Value>,
}

/// Whether the server declared this experimental capability in its
/// initialize result. rmcp keeps that result before it sends `initialized`,
/// so a notification the server sends the moment the handshake ends is
/// judged by it too (a flag set after the handshake returned would drop it).
fn declares(peer: &Peer<RoleClient>, capability: &str) -> bool {
    peer.peer_info().is_some_and(|info| {
        info.capabilities
            .experimental
            .as_ref()
            .is_some_and(|declared| declared.contains_key(capability))
    })
}

impl Handler {
    /// Whether Claude Code would take channel notifications from this
    /// server: loaded as a channel, in the legacy era, declaring it.
    fn takes_channel(&self, peer: &Peer<RoleClient>) -> bool {
        self.channel_listed && declares(peer, CHANNEL_CAPABILITY)
    }

    /// Whether Claude Code would relay permission prompts to this server
    /// and take its verdicts.
    fn relays_permissions(&self, peer: &Peer<RoleClient>) -> bool {
        self.takes_channel(peer) && declares(peer, PERMISSION_CAPABILITY)
    }
}

impl ClientHandler for Handler {
    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleClient>,
    ) {
        if notification.method == CHANNEL_METHOD && self.takes_channel(&context.peer) {
            let _ = self
                .notifications
                .send(notification.params.unwrap_or(Value::Null));
        } else if notification.method == PERMISSION_METHOD && self.relays_permissions(&context.peer)
        {
            let _ = self
                .verdicts
                .send(notification.params.unwrap_or(Value::Null));
        }
    }

    fn get_info(&self) -> ClientConfig {
        Self::info()
    }
}

impl Handler {
    fn info() -> ClientConfig {
        ClientConfig::new(
            Default::default(),
            Implementation::new("claude-code", "0.0.0-fake"),
        )
        .with_protocol_version(LEGACY_PROTOCOL)
    }
}

/// Claude Code's first question to a server: `server/discover` at the
/// modern revision. Whether the server offers it (else it answered with an
/// error, as a legacy server does, and `initialize` follows).
async fn offers_modern(transport: &mut TokioChildProcess) -> Result<bool, String> {
    let info = Handler::info();
    let mut discover = DiscoverRequest::new(DiscoverRequestParams {});
    discover
        .extensions
        .insert(RequestMetaObject::with_client_context(
            MODERN_PROTOCOL,
            info.client_info,
            info.capabilities,
        ));
    let id = NumberOrString::String("claude-code-discover".into());
    transport
        .send(ClientJsonRpcMessage::request(
            ClientRequest::DiscoverRequest(discover),
            id,
        ))
        .await
        .map_err(|err| format!("cannot send server/discover: {err}"))?;
    loop {
        let message = tokio::time::timeout(START_LIMIT, transport.receive())
            .await
            .map_err(|_| format!("no answer to server/discover within {START_LIMIT:?}"))?
            .ok_or("the MCP server closed its stdout before answering server/discover")?;
        let message = serde_json::to_value(&message).map_err(|err| err.to_string())?;
        if message["id"] != "claude-code-discover" {
            continue;
        }
        let offered = message["result"]["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == MODERN_PROTOCOL.as_str()));
        return Ok(offered);
    }
}

type Client = RunningService<RoleClient, Handler>;

/// Starts the `claudemesh` server of the configuration and reports it.
async fn start_server(
    parsed: &Parsed,
    notifications: mpsc::UnboundedSender<Value>,
    verdicts: mpsc::UnboundedSender<Value>,
) -> Result<Client, String> {
    let configs = parsed.values("mcp-config");
    if configs.is_empty() {
        return Err("no --mcp-config given".into());
    }
    let servers = mcp_servers(&configs)?;
    emit(json!({"event": "mcp_config", "servers": servers}));
    let entry = servers
        .get(SERVER_NAME)
        .ok_or_else(|| format!("no `{SERVER_NAME}` server in the MCP configuration"))?;
    let command = entry
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the `{SERVER_NAME}` server has no command"))?;
    let mut child = tokio::process::Command::new(command);
    child.args(strings(entry.get("args")));
    if let Some(env) = entry.get("env").and_then(Value::as_object) {
        for (name, value) in env {
            child.env(name, value.as_str().unwrap_or_default());
        }
    }
    let mut transport =
        TokioChildProcess::new(child).map_err(|err| format!("cannot start {command}: {err}"))?;
    let modern = offers_modern(&mut transport).await?;
    let handler = Handler {
        channel_listed: !modern
            && parsed
                .values("dangerously-load-development-channels")
                .iter()
                .any(|c| *c == format!("server:{SERVER_NAME}")),
        notifications,
        verdicts,
    };
    let lifecycle = if modern {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![MODERN_PROTOCOL],
        }
    } else {
        ClientLifecycleMode::Initialize
    };
    let client = tokio::time::timeout(
        START_LIMIT,
        handler.serve_with_lifecycle(transport, lifecycle),
    )
    .await
    .map_err(|_| format!("the MCP server did not answer within {START_LIMIT:?}"))?
    .map_err(|err| format!("the MCP handshake failed: {err}"))?;
    let info = client
        .peer_info()
        .ok_or("the MCP server sent no initialize result")?;
    let info = serde_json::to_value(&*info).map_err(|err| err.to_string())?;
    let experimental: Vec<String> = info["capabilities"]["experimental"]
        .as_object()
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default();
    emit(json!({
        "event": "initialized",
        "era": if modern { "modern" } else { "legacy" },
        "protocol_version": info["protocolVersion"],
        "server": info["serverInfo"],
        "capabilities": info["capabilities"],
        "experimental": experimental,
        "instructions": info["instructions"],
    }));
    let tools = client
        .list_all_tools()
        .await
        .map_err(|err| format!("tools/list failed: {err}"))?;
    let tools: Vec<Value> = tools
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name,
                "description": tool.description,
                "input_schema": *tool.input_schema,
            })
        })
        .collect();
    emit(json!({"event": "tools", "tools": tools}));
    Ok(client)
}

async fn call(client: Option<&Client>, tool: &str, args: Value) -> Value {
    let Some(client) = client else {
        return json!({"event": "result", "tool": tool, "is_error": true, "text": null,
                      "error": "no MCP server is running"});
    };
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = match args {
        Value::Object(map) => Some(map),
        Value::Null => None,
        other => {
            return json!({"event": "result", "tool": tool, "is_error": true, "text": null,
                          "error": format!("args must be an object, not {other}")});
        }
    };
    match client.call_tool(params).await {
        Ok(result) => {
            let result = serde_json::to_value(&result).unwrap_or(Value::Null);
            let text: Vec<&str> = result["content"]
                .as_array()
                .map(|c| c.iter().filter_map(|b| b["text"].as_str()).collect())
                .unwrap_or_default();
            json!({
                "event": "result",
                "tool": tool,
                "is_error": result["isError"].as_bool().unwrap_or(false),
                "text": text.join("\n"),
            })
        }
        Err(err) => json!({"event": "result", "tool": tool, "is_error": true, "text": null,
                           "error": err.to_string()}),
    }
}

/// Sends a permission request to the server as Claude Code does, if Claude
/// Code would relay to it.
async fn permission_request(client: Option<&Client>, params: Value) -> Value {
    let Some(client) = client else {
        return json!({"event": "permission_request_skipped", "why": "no MCP server is running"});
    };
    if !client.service().relays_permissions(client.peer()) {
        return json!({"event": "permission_request_skipped",
                      "why": "the server is not a channel that declares claude/channel/permission"});
    }
    let notification = CustomNotification::new(PERMISSION_REQUEST_METHOD, Some(params));
    match client
        .send_notification(ClientNotification::CustomNotification(notification))
        .await
    {
        Ok(()) => json!({"event": "permission_request_sent"}),
        Err(err) => json!({"event": "permission_request_skipped", "why": err.to_string()}),
    }
}

/// Stops the MCP server as Claude Code does, then exits.
async fn exit(client: Option<Client>, code: i32) -> ! {
    let mut stopped_after = Value::Null;
    if let Some(client) = client {
        let start = Instant::now();
        if tokio::time::timeout(STOP_LIMIT, client.cancel())
            .await
            .is_ok()
        {
            stopped_after = json!(start.elapsed().as_millis() as u64);
        }
    }
    emit(json!({"event": "exiting", "code": code, "mcp_stopped_after_ms": stopped_after}));
    std::process::exit(code)
}

// -------------------------------------------------------------------- main

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // As Claude Code answers it (`claudemesh doctor` reads it); the version
    // can be set to test an old one.
    if argv == ["--version"] {
        let version = std::env::var("FAKE_CLAUDE_VERSION").unwrap_or_else(|_| "2.1.332".into());
        println!("{version} (Claude Code)");
        return;
    }
    let env: Map<String, Value> = ["CLAUDEMESH_CONFIG_DIR", "CLAUDEMESH_DISPLAY_NAME"]
        .into_iter()
        .map(|name| {
            let value = std::env::var(name).map_or(Value::Null, Value::String);
            (name.to_owned(), value)
        })
        .collect();
    emit(json!({"event": "started", "argv": argv, "env": env}));
    let parsed = match parse_args(&argv) {
        Ok(parsed) => parsed,
        Err(message) => {
            emit(json!({"event": "usage_error", "message": message}));
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    emit(parsed.report());

    let (notify_tx, notifications) = mpsc::unbounded_channel();
    let notifications = Mutex::new(notifications);
    let (verdict_tx, verdicts) = mpsc::unbounded_channel();
    let verdicts = Mutex::new(verdicts);
    let client = match start_server(&parsed, notify_tx, verdict_tx).await {
        Ok(client) => Some(client),
        Err(message) => {
            emit(json!({"event": "mcp_error", "message": message}));
            None
        }
    };

    // stdin is read on a thread of its own: a blocking read cannot be
    // cancelled, and the double must be able to exit while one waits.
    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let command: Value = match serde_json::from_str(&line) {
            Ok(command) => command,
            Err(err) => {
                emit(json!({"event": "error", "message": format!("not JSON ({err}): {line}")}));
                continue;
            }
        };
        if let Some(tool) = command.get("call").and_then(Value::as_str) {
            let args = command.get("args").cloned().unwrap_or(Value::Null);
            emit(call(client.as_ref(), tool, args).await);
        } else if command.get("wait").and_then(Value::as_str) == Some("notification") {
            let limit = Duration::from_millis(command["timeout_ms"].as_u64().unwrap_or(10_000));
            let mut queue = notifications.lock().await;
            match tokio::time::timeout(limit, queue.recv()).await {
                Ok(Some(params)) => emit(json!({"event": "notification", "params": params})),
                _ => emit(json!({"event": "timeout"})),
            }
        } else if command.get("wait").and_then(Value::as_str) == Some("permission") {
            let limit = Duration::from_millis(command["timeout_ms"].as_u64().unwrap_or(10_000));
            let mut queue = verdicts.lock().await;
            match tokio::time::timeout(limit, queue.recv()).await {
                Ok(Some(params)) => emit(json!({"event": "permission", "params": params})),
                _ => emit(json!({"event": "timeout"})),
            }
        } else if let Some(request) = command.get("permission_request") {
            emit(permission_request(client.as_ref(), request.clone()).await);
        } else if let Some(code) = command.get("exit").and_then(Value::as_i64) {
            exit(client, i32::try_from(code).unwrap_or(1)).await;
        } else {
            emit(json!({"event": "error", "message": format!("unknown command: {line}")}));
        }
    }
    exit(client, 0).await
}
