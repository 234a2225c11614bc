//! What the API takes in the fields of its requests, said once: the server
//! checks requests with the `is_*` functions here, and its OpenAPI document
//! describes the same fields with the patterns and lengths here
//! ([`schema`]), so that a request the document calls valid is one the
//! server accepts, and the other way round (`scripts/api-contract` sends
//! the server both kinds). The tests below hold each pattern to its
//! function.
//!
//! Patterns are JSON Schema's (ECMA-262, unanchored), in a subset that reads
//! the same in Rust's `regex`, Python's `re` and JavaScript: classes, `\x`
//! and `\u` escapes, anchors, bounded repeats.

use serde::{Deserialize, Deserializer};

/// Characters in a name: an account's, a mesh's, a member's in a mesh, a
/// token's, a machine's.
pub const MAX_LABEL_CHARS: usize = 100;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const MAX_EMAIL_CHARS: usize = 254;
/// Hex characters in an ed25519 public key.
pub const PUBLIC_KEY_HEX_CHARS: usize = 64;
/// The lifetimes a personal access token may have, in days (or none: `null`).
pub const PAT_EXPIRY_DAYS: [u32; 3] = [30, 90, 365];
/// The longest an invite may be valid, in days.
pub const MAX_INVITE_EXPIRY_DAYS: u32 = 365;
/// The most uses an invite may allow.
pub const MAX_INVITE_USES: u32 = 1000;

/// What `char::is_whitespace` accepts (what `str::trim` removes), as the
/// inside of a regex class.
const SPACE: &str = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// What `char::is_control` accepts, as the inside of a regex class.
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// A name: at most [`MAX_LABEL_CHARS`] characters as sent, no control
/// characters, and something besides spaces (which are trimmed off).
pub fn is_label(raw: &str) -> bool {
    raw.chars().count() <= MAX_LABEL_CHARS
        && !raw.chars().any(char::is_control)
        && !raw.trim().is_empty()
}

pub fn label_pattern() -> String {
    format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$")
}

/// An email address as the server takes it: at most [`MAX_EMAIL_CHARS`]
/// characters as sent; once trimmed, no spaces or control characters, and
/// `local@domain` with a dot in the domain.
pub fn is_email(raw: &str) -> bool {
    let email = raw.trim();
    raw.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

fn email_core() -> String {
    let ch = format!("[^@{CONTROL}{SPACE}]");
    format!("{ch}+@{ch}*\\.{ch}*")
}

pub fn email_pattern() -> String {
    format!("^[{SPACE}]*{}[{SPACE}]*$", email_core())
}

/// An email address, or nothing but spaces (no address).
pub fn is_blank_or_email(raw: &str) -> bool {
    (raw.trim().is_empty() && raw.chars().count() <= MAX_EMAIL_CHARS) || is_email(raw)
}

pub fn blank_or_email_pattern() -> String {
    format!("^[{SPACE}]*({})?[{SPACE}]*$", email_core())
}

/// An ed25519 public key: [`PUBLIC_KEY_HEX_CHARS`] hex digits, either case,
/// spaces around them trimmed off.
pub fn is_public_key(raw: &str) -> bool {
    let key = raw.trim();
    key.len() == PUBLIC_KEY_HEX_CHARS && key.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn public_key_pattern() -> String {
    format!("^[{SPACE}]*[0-9a-fA-F]{{{PUBLIC_KEY_HEX_CHARS}}}[{SPACE}]*$")
}

/// A mesh slug as a request may give it: [`crate::Slug`]'s format, spaces
/// around it trimmed off.
pub fn is_slug(raw: &str) -> bool {
    crate::Slug::parse(raw.trim()).is_ok()
}

pub fn slug_pattern() -> String {
    let rest = crate::slug::MAX_SLUG_LEN - 1;
    format!("^[{SPACE}]*[a-z0-9][a-z0-9-]{{1,{rest}}}[{SPACE}]*$")
}

/// Reads a whole number sent as a JSON integer or as a number with no
/// fraction (`30.0`): JSON Schema's `integer` is both, so a request the
/// document calls valid must parse.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::{Error, Unexpected, Visitor};
    use std::marker::PhantomData;

    struct Whole<T>(PhantomData<T>);

    impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number in range")
        }

        fn visit_u64<E: Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_i64<E: Error>(self, value: i64) -> Result<T, E> {
            let unsigned = u64::try_from(value)
                .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))?;
            self.visit_u64(unsigned)
        }

        fn visit_f64<E: Error>(self, value: f64) -> Result<T, E> {
            // Exactly the floats that are whole and within u64.
            if value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value) {
                return self.visit_u64(value as u64);
            }
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }

    deserializer.deserialize_any(Whole(PhantomData))
}

/// `deserialize_with` for a whole-number field (see [`whole_number`]).
pub(crate) fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    whole_number(deserializer)
}

/// `deserialize_with` for an optional whole-number field: `null` is `None`.
pub(crate) fn optional_whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Wrapped<T: TryFrom<u64>>(#[serde(deserialize_with = "whole_number")] T);
    Ok(Option::<Wrapped<T>>::deserialize(deserializer)?.map(|Wrapped(value)| value))
}

/// The schemas of the fields above, for `#[schema(schema_with = …)]`.
#[cfg(feature = "openapi")]
pub mod schema {
    use super::*;
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    use utoipa::openapi::{Object, RefOr, Schema};

    fn string(nullable: bool, description: &str) -> ObjectBuilder {
        let schema_type = if nullable {
            SchemaType::from_iter([Type::String, Type::Null])
        } else {
            SchemaType::Type(Type::String)
        };
        ObjectBuilder::new()
            .schema_type(schema_type)
            .description(Some(description))
    }

    fn integer(nullable: bool, description: &str, min: u64, max: u64) -> ObjectBuilder {
        let schema_type = if nullable {
            SchemaType::from_iter([Type::Integer, Type::Null])
        } else {
            SchemaType::Type(Type::Integer)
        };
        ObjectBuilder::new()
            .schema_type(schema_type)
            .description(Some(description))
            .minimum(Some(min))
            .maximum(Some(max))
    }

    pub fn label(nullable: bool, description: &str) -> Object {
        string(nullable, description)
            .max_length(Some(MAX_LABEL_CHARS))
            .pattern(Some(label_pattern()))
            .build()
    }

    pub fn email(description: &str) -> Object {
        string(false, description)
            .max_length(Some(MAX_EMAIL_CHARS))
            .pattern(Some(email_pattern()))
            .build()
    }

    pub fn blank_or_email(description: &str) -> Object {
        string(true, description)
            .max_length(Some(MAX_EMAIL_CHARS))
            .pattern(Some(blank_or_email_pattern()))
            .build()
    }

    pub fn password(description: &str) -> Object {
        string(false, description)
            .min_length(Some(MIN_PASSWORD_CHARS))
            .max_length(Some(MAX_PASSWORD_CHARS))
            .build()
    }

    pub fn public_key(description: &str) -> Object {
        string(false, description)
            .pattern(Some(public_key_pattern()))
            .build()
    }

    pub fn slug(nullable: bool, description: &str) -> Object {
        string(nullable, description)
            .pattern(Some(slug_pattern()))
            .build()
    }

    /// A whole number from `min` to `max`, or `null`.
    pub fn optional_whole(description: &str, min: u64, max: u64) -> Object {
        integer(true, description, min, max).build()
    }

    /// A whole number from `min` to `max`.
    pub fn whole(description: &str, min: u64, max: u64) -> Object {
        integer(false, description, min, max).build()
    }

    /// One of `values`, or `null`.
    pub fn one_of_or_null(description: &str, values: &[u32]) -> RefOr<Schema> {
        let values = values
            .iter()
            .map(|&value| serde_json::Value::from(value))
            .chain([serde_json::Value::Null]);
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
            .description(Some(description))
            .enum_values(Some(values))
            .build()
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex_lite::Regex;

    fn matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(text)
    }

    /// Text made of the characters these rules tell apart.
    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "Z", "0", "f", "F", "g", "-", "_", ".", "@", " ", "\t", "\n", "\r", "\u{b}",
            "\u{c}", "\u{0}", "\u{1c}", "\u{7f}", "\u{85}", "\u{a0}", "\u{1680}", "\u{180e}",
            "\u{2003}", "\u{200b}", "\u{2028}", "\u{202f}", "\u{3000}", "\u{feff}", "é", "ß", "😀",
            "x.y", "a@b.c",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn the_label_pattern_is_the_label_check(text in tricky()) {
            prop_assert_eq!(matches(&label_pattern(), &text), text.chars().any(|c| !c.is_whitespace()) && !text.chars().any(char::is_control));
            prop_assert_eq!(matches(&label_pattern(), &text), is_label(&text));
        }

        #[test]
        fn the_email_patterns_are_the_email_checks(text in tricky()) {
            prop_assert_eq!(matches(&email_pattern(), &text), is_email(&text));
            prop_assert_eq!(matches(&blank_or_email_pattern(), &text), is_blank_or_email(&text));
        }

        #[test]
        fn the_public_key_pattern_is_the_key_check(
            pad in tricky(),
            hex in "[0-9a-fA-F]{63,65}",
            end in tricky(),
        ) {
            let text = format!("{pad}{hex}{end}");
            prop_assert_eq!(matches(&public_key_pattern(), &text), is_public_key(&text));
        }

        #[test]
        fn the_slug_pattern_is_the_slug_check(
            pad in prop::sample::select(vec!["", " ", "\u{a0}", "\u{1c}", "\u{0}"]),
            slug in "[a-z0-9_-]{0,42}",
            end in prop::sample::select(vec!["", "\t", "\u{3000}", "A", "\u{85}"]),
        ) {
            let text = format!("{pad}{slug}{end}");
            prop_assert_eq!(matches(&slug_pattern(), &text), is_slug(&text));
        }
    }

    #[test]
    fn lengths_count_characters_as_sent() {
        assert!(is_label(&"é".repeat(MAX_LABEL_CHARS)));
        assert!(!is_label(&format!(" {}", "a".repeat(MAX_LABEL_CHARS))));
        let local = "a".repeat(MAX_EMAIL_CHARS - "@b.co".len());
        assert!(is_email(&format!("{local}@b.co")));
        assert!(!is_email(&format!(" {local}@b.co")));
        assert!(is_blank_or_email("   "));
    }

    #[test]
    fn whole_numbers_may_be_sent_as_floats() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(deserialize_with = "whole")]
            n: u8,
            #[serde(default, deserialize_with = "optional_whole")]
            m: Option<u32>,
        }
        let parse = |text: &str| serde_json::from_str::<Body>(text).map(|b| (b.n, b.m));
        assert_eq!(parse(r#"{"n":3}"#).unwrap(), (3, None));
        assert_eq!(parse(r#"{"n":3.0,"m":30.0}"#).unwrap(), (3, Some(30)));
        assert_eq!(parse(r#"{"n":255,"m":null}"#).unwrap(), (255, None));
        for bad in [
            r#"{"n":256}"#,
            r#"{"n":-1}"#,
            r#"{"n":1.5}"#,
            r#"{"n":"1"}"#,
            r#"{"n":1,"m":-0.5}"#,
            r#"{"n":1,"m":1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
