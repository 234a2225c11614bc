//! Limits per client address on the writes anyone may make without signing
//! in, each of which adds a row or costs a password hash:
//!
//! | write | routes | default |
//! |---|---|---|
//! | start a device login | `POST /api/auth/cli/device-code`, `POST /oauth/device_authorization` | 30 a minute |
//! | create an account | `POST /api/auth/register`, `POST /register` | 10 a minute |
//! | sign in (right or wrong password) | `POST /api/auth/sign-in`, `POST /login` | 30 a minute |
//!
//! Each is a [`RequestLimit`] (N in any sixty seconds, refused requests not
//! counted) keyed by the client's address as
//! [`ClientInfo`](crate::http::request::ClientInfo) finds it; an IPv6 address
//! counts by its /64, which one host or one customer usually holds
//! whole, so that a host cannot step past the limit by changing addresses,
//! nor fill the table with one entry per address. Past a limit: 429
//! `rate_limited` with `Retry-After`. 0 turns a limit off
//! (`--device-codes-per-ip-per-minute`, `--sign-ups-per-ip-per-minute`,
//! `--sign-ins-per-ip-per-minute`).
//!
//! The check is made where the write is made ([`crate::auth::device_codes::start`],
//! [`crate::auth::accounts::create_account`], [`crate::auth::accounts::check_credentials`]),
//! so the JSON API and the pages share one count. Counts live in this
//! instance's memory, like the per-token limit: N instances allow N times
//! the limit (docs/operations.md). Wrong passwords are also limited in the
//! database across instances ([`crate::auth::guessing`]).

use crate::app::config::Config;
use crate::auth::request_limit::RequestLimit;
use crate::http::error::{AppError, AppResult};
use std::borrow::Cow;
use std::net::IpAddr;

/// Defaults, a minute per client address (kept with the other settings).
pub use crate::app::config::{
    DEVICE_CODES_PER_IP_PER_MINUTE as DEVICE_CODES_PER_MINUTE,
    SIGN_INS_PER_IP_PER_MINUTE as SIGN_INS_PER_MINUTE,
    SIGN_UPS_PER_IP_PER_MINUTE as SIGN_UPS_PER_MINUTE,
};

/// A write limited per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    DeviceCode,
    SignUp,
    SignIn,
}

/// One limit and its size, for the message.
struct Limit {
    per_minute: u32,
    counts: RequestLimit,
}

impl Limit {
    fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            counts: RequestLimit::new(per_minute),
        }
    }
}

/// This instance's counts of unauthenticated writes per client address.
pub struct AddressLimits {
    device_codes: Limit,
    sign_ups: Limit,
    sign_ins: Limit,
}

impl AddressLimits {
    pub fn new(device_codes: u32, sign_ups: u32, sign_ins: u32) -> Self {
        Self {
            device_codes: Limit::new(device_codes),
            sign_ups: Limit::new(sign_ups),
            sign_ins: Limit::new(sign_ins),
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(
            config.device_codes_per_ip_per_minute,
            config.sign_ups_per_ip_per_minute,
            config.sign_ins_per_ip_per_minute,
        )
    }

    /// Counts one `write` from `ip` at `now_ms`, or refuses it with the 429
    /// to answer.
    pub fn check(&self, write: Write, ip: &str, now_ms: i64) -> AppResult<()> {
        let (limit, what) = match write {
            Write::DeviceCode => (&self.device_codes, "login requests"),
            Write::SignUp => (&self.sign_ups, "new accounts"),
            Write::SignIn => (&self.sign_ins, "sign-ins"),
        };
        limit
            .counts
            .check(&address_key(ip), now_ms)
            .map_err(|refused| AppError {
                message: format!(
                    "Too many {what} from this address: at most {} a minute",
                    limit.per_minute
                )
                .into(),
                ..refused
            })
    }
}

/// What a client address counts as: an IPv6 address by its /64 (an
/// IPv4-mapped one as its IPv4 address), anything else as written.
pub fn address_key(ip: &str) -> Cow<'_, str> {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Cow::Owned(v4.to_string()),
            None => {
                let s = v6.segments();
                Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
        _ => Cow::Borrowed(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use claudemesh_api::ErrorCode;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
        assert_ne!(address_key("2001:db8:1:3::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(address_key("unknown"), "unknown");
    }

    #[test]
    fn each_write_counts_on_its_own_and_says_what_it_limits() {
        let limits = AddressLimits::new(2, 1, 0);
        for _ in 0..2 {
            assert!(limits.check(Write::DeviceCode, "192.0.2.7", T0).is_ok());
        }
        let err = limits
            .check(Write::DeviceCode, "192.0.2.7", T0)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert_eq!(err.retry_after, Some(60));
        assert_eq!(
            err.message,
            "Too many login requests from this address: at most 2 a minute"
        );
        assert!(limits.check(Write::DeviceCode, "192.0.2.8", T0).is_ok());
        assert!(limits.check(Write::SignUp, "192.0.2.7", T0).is_ok());
        let err = limits.check(Write::SignUp, "192.0.2.7", T0).unwrap_err();
        assert!(err.message.contains("new accounts"), "{}", err.message);
        // 0: no limit.
        for _ in 0..100 {
            assert!(limits.check(Write::SignIn, "192.0.2.7", T0).is_ok());
        }
    }

    #[test]
    fn the_settings_default_to_30_10_30_and_take_0() {
        use clap::Parser;
        let config = Config::try_parse_from(["claudemesh-server"]).unwrap();
        assert_eq!(
            (
                config.device_codes_per_ip_per_minute,
                config.sign_ups_per_ip_per_minute,
                config.sign_ins_per_ip_per_minute
            ),
            (30, 10, 30)
        );
        let config = Config::try_parse_from([
            "claudemesh-server",
            "--device-codes-per-ip-per-minute",
            "0",
            "--sign-ups-per-ip-per-minute",
            "2",
            "--sign-ins-per-ip-per-minute",
            "3",
        ])
        .unwrap();
        let limits = AddressLimits::from_config(&config);
        for _ in 0..1000 {
            assert!(limits.check(Write::DeviceCode, "192.0.2.7", T0).is_ok());
        }
        assert!(limits.check(Write::SignUp, "192.0.2.7", T0).is_ok());
        assert!(limits.check(Write::SignUp, "192.0.2.7", T0).is_ok());
        assert!(limits.check(Write::SignUp, "192.0.2.7", T0).is_err());
    }

    #[test]
    fn a_new_address_in_the_same_64_does_not_get_a_new_allowance() {
        let limits = AddressLimits::new(1, 1, 1);
        assert!(limits.check(Write::DeviceCode, "2001:db8::1", T0).is_ok());
        assert!(limits.check(Write::DeviceCode, "2001:db8::2", T0).is_err());
        assert!(
            limits
                .check(Write::DeviceCode, "2001:db8:0:1::1", T0)
                .is_ok()
        );
    }
}
