//! What the server writes for people.
//!
//! - [`i18n`]: the languages of the pages and mails (English, Spanish).
//! - [`mod@format`]: times, escaped HTML, percent-encoded values, where to go
//!   after signing in.
//! - [`mail`]: outgoing mail, through SMTP or into an outbox directory.

pub mod format;
pub mod i18n;
pub mod mail;
