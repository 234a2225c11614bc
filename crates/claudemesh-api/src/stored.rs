//! Enum values as the server stores them (one lowercase word each): parsed
//! when a row is read, so that a value the code does not know is an error
//! where it is read, never a silent default.

use crate::TokenKind;
use crate::broker::{MessageKind, PeerStatus, Priority};
use crate::wire::MeshRole;
use std::fmt;

/// A stored word that names no value of the enum it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What the value should be: `token kind`, `mesh role`, …
    pub what: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.what, self.value)
    }
}

impl std::error::Error for UnknownValue {}

fn parsed<T>(
    what: &'static str,
    value: String,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, UnknownValue> {
    parse(&value).ok_or(UnknownValue { what, value })
}

impl TryFrom<String> for TokenKind {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Self, UnknownValue> {
        parsed("token kind", value, TokenKind::from_db)
    }
}

impl MeshRole {
    /// The stored word: `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

impl TryFrom<String> for MeshRole {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Self, UnknownValue> {
        parsed("mesh role", value, MeshRole::parse)
    }
}

impl TryFrom<String> for MessageKind {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Self, UnknownValue> {
        parsed("message kind", value, MessageKind::parse)
    }
}

impl TryFrom<String> for Priority {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Self, UnknownValue> {
        parsed("message priority", value, Priority::parse)
    }
}

impl TryFrom<String> for PeerStatus {
    type Error = UnknownValue;
    fn try_from(value: String) -> Result<Self, UnknownValue> {
        parsed("session status", value, PeerStatus::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_anything_else_is_refused() {
        for kind in [TokenKind::Session, TokenKind::Pat] {
            assert_eq!(TokenKind::try_from(kind.as_str().to_owned()), Ok(kind));
        }
        for role in [MeshRole::Admin, MeshRole::Member] {
            assert_eq!(MeshRole::try_from(role.as_str().to_owned()), Ok(role));
        }
        for kind in [
            MessageKind::Direct,
            MessageKind::Group,
            MessageKind::Broadcast,
        ] {
            assert_eq!(
                MessageKind::try_from(kind.as_str().to_owned()).ok(),
                Some(kind)
            );
        }
        let unknown = MeshRole::try_from("owner".to_owned()).unwrap_err();
        assert_eq!(unknown.to_string(), r#"unknown mesh role "owner""#);
        assert!(TokenKind::try_from("Pat".to_owned()).is_err());
        assert!(MessageKind::try_from(String::new()).is_err());
    }
}
