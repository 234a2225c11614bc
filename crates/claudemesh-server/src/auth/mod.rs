//! Who is calling, and how they got a credential.
//!
//! - [`caller`]: the bearer-token or session-cookie check every `/api/my/*`
//!   route makes ([`caller::Caller`], [`caller::BrowserCaller`]), and the
//!   browser sessions behind the cookie.
//! - [`csrf`]: the one rule that lets a cookie-authenticated change through.
//! - [`accounts`]: register, sign in and out, change password; hashed by
//!   [`passwords`].
//! - [`device_codes`]: how a terminal gets a token (RFC 8628), with its
//!   standard OAuth face in [`oauth`] and its waiting polls in [`wakeups`].
//! - [`token_store`]: the tokens themselves (minted, verified, revoked), and
//!   [`tokens`], the routes that show them.
//! - [`credential_mail`]: the mail an account gets for each new credential.
//! - Limits: [`request_limit`] on each token, [`address_limits`] per client
//!   address on what needs no sign-in, [`guessing`] on user codes and
//!   passwords.

pub mod accounts;
pub mod address_limits;
pub mod caller;
pub mod credential_mail;
pub mod csrf;
pub mod device_codes;
pub mod guessing;
pub mod oauth;
pub mod passwords;
pub mod request_limit;
pub mod token_store;
pub mod tokens;
pub mod wakeups;
