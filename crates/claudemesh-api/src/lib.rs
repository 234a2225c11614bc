//! The claudemesh wire contract, shared by the server and the CLI.
//!
//! Everything both sides must agree on lives here and nowhere else: the JSON
//! bodies of every endpoint, the token and user-code formats, and the stable
//! error codes. Nothing in this crate touches a socket or a file, so all of it
//! is unit-tested in isolation.

pub mod backoff;
pub mod broker;
pub mod e2e;
pub mod error;
pub mod mesh_log;
pub mod permission;
pub mod rules;
pub mod sealed;
mod secret;
pub mod slug;
pub mod stored;
pub mod telemetry;
pub mod token;
pub mod user_code;
pub mod wire;

pub use error::{ErrorBody, ErrorCode};
pub use secret::{DeviceCode, SecretFormatError, sha256_hex};
pub use slug::{Slug, SlugError};
pub use token::{SCAN_REGEX, Token, TokenFormatError, TokenKind};
pub use user_code::{USER_CODE_ALPHABET, UserCode, UserCodeError};
