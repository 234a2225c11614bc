//! The broker's WebSocket: the upgrade from HTTP, and a socket that sends a
//! large text frame as fragments.
//!
//! Why not axum's `WebSocket`: tungstenite writes each frame whole into a
//! write buffer that keeps its capacity for the life of the connection. A
//! welcome or a peer list in a mesh of 100 is 30 to 40 KB, so every idle
//! session of a full mesh kept that much memory after its first frame
//! (34.5 KiB a session against 19 in meshes of 20). RFC 6455 (section 5.4)
//! lets a message travel as several frames, which every client reassembles
//! without knowing; sent in fragments of [`FRAGMENT`] bytes, no frame grows
//! the buffer past that. axum's `Message` has no way to send a fragment, so
//! this module upgrades the connection itself, as axum does (RFC 6455
//! section 4.2.2), and hands the connection task a tungstenite stream.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
pub use tokio_tungstenite::tungstenite::{Error, Message, Utf8Bytes};

/// The largest frame the broker writes (2 KiB: a message of a few lines
/// fits): a text message longer than this
/// goes as fragments of this size (most frames, presence and a message of
/// a few lines, are smaller and go whole).
pub const FRAGMENT: usize = 2 * 1024;

/// A request to open the broker's WebSocket, checked as RFC 6455 asks.
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake: 400 with a line saying so
/// (426 for a version other than 13, with the one this server speaks).
pub struct NotAnUpgrade(StatusCode, &'static str);

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        let mut response = (self.0, self.1).into_response();
        if self.0 == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotAnUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(NotAnUpgrade(
                StatusCode::METHOD_NOT_ALLOWED,
                "A WebSocket handshake is a GET",
            ));
        }
        if !header_has(&parts.headers, header::CONNECTION, "upgrade")
            || !header_has(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(NotAnUpgrade(
                StatusCode::BAD_REQUEST,
                "This address speaks WebSocket only (Connection: upgrade, Upgrade: websocket)",
            ));
        }
        if !header_has(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(NotAnUpgrade(
                StatusCode::UPGRADE_REQUIRED,
                "Only WebSocket version 13 is spoken here",
            ));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(NotAnUpgrade(
                StatusCode::BAD_REQUEST,
                "The WebSocket handshake has no Sec-WebSocket-Key",
            ));
        };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| NotAnUpgrade(StatusCode::BAD_REQUEST, "Bad Sec-WebSocket-Key"))?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(NotAnUpgrade(
            StatusCode::BAD_REQUEST,
            "This connection cannot be upgraded",
        ))?;
        Ok(Self { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers 101 and runs `serve` on the socket once the client has it.
    pub fn on_upgrade<F, Fut>(self, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                tracing::debug!("broker: the client left before the upgrade completed");
                return;
            };
            let inner = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            serve(Socket { inner }).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// An open broker connection.
pub struct Socket {
    inner: WebSocketStream<TokioIo<Upgraded>>,
}

impl Socket {
    /// The next message from the client; `None` once the stream ended.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.inner.next().await
    }

    /// Queues a message without flushing; a text longer than [`FRAGMENT`]
    /// is queued as fragments (nothing else is written between them: this
    /// task is the only writer).
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        let Message::Text(text) = message else {
            return self.inner.feed(message).await;
        };
        if text.len() <= FRAGMENT {
            return self.inner.feed(Message::Text(text)).await;
        }
        // Fragments are bytes: one may end inside a character, which RFC
        // 6455 allows (only the whole message must be UTF-8).
        let bytes = axum::body::Bytes::from(text);
        let count = bytes.len().div_ceil(FRAGMENT);
        for index in 0..count {
            let part = bytes.slice(index * FRAGMENT..((index + 1) * FRAGMENT).min(bytes.len()));
            let opcode = if index == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let frame = Frame::message(part, opcode, index + 1 == count);
            self.inner.feed(Message::Frame(frame)).await?;
        }
        Ok(())
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush().await
    }

    /// Queues and writes.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.feed(message).await?;
        self.flush().await
    }
}
