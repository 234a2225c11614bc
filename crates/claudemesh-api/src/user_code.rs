//! The short code a person reads off the terminal: `ABCD-EFGH`.
//!
//! Eight characters from an alphabet with no vowels and no look-alikes (RFC
//! 8628 §6.1), so codes never spell words and survive being read aloud.
//! Typed codes are matched case-insensitively, with the dash and spaces
//! optional.

use crate::secret::random_bytes;
use std::fmt;

pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const LEN: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserCode([u8; LEN]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCodeError {
    WrongLength,
    BadCharacter,
}

impl fmt::Display for UserCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongLength => "a code has 8 letters, like ABCD-EFGH",
            Self::BadCharacter => "a code uses only the consonants BCDFGHJKLMNPQRSTVWXZ",
        })
    }
}

impl std::error::Error for UserCodeError {}

impl UserCode {
    pub fn generate() -> Self {
        let mut code = [0u8; LEN];
        let mut filled = 0;
        while filled < LEN {
            for byte in random_bytes::<16>() {
                // 240 is the largest multiple of 20 below 256: rejecting the
                // bytes above it keeps every letter equally likely.
                if byte < 240 && filled < LEN {
                    code[filled] = USER_CODE_ALPHABET[usize::from(byte % 20)];
                    filled += 1;
                }
            }
        }
        Self(code)
    }

    /// Normalises what a person typed: any case, with or without the dash,
    /// with stray spaces.
    pub fn parse(text: &str) -> Result<Self, UserCodeError> {
        let mut code = [0u8; LEN];
        let mut len = 0;
        for ch in text.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let upper = ch.to_ascii_uppercase();
            if !upper.is_ascii() || !USER_CODE_ALPHABET.contains(&(upper as u8)) {
                return Err(UserCodeError::BadCharacter);
            }
            if len == LEN {
                return Err(UserCodeError::WrongLength);
            }
            code[len] = upper as u8;
            len += 1;
        }
        if len != LEN {
            return Err(UserCodeError::WrongLength);
        }
        Ok(Self(code))
    }

    /// The stored form: eight capitals, no dash.
    pub fn compact(&self) -> &str {
        // Built from the ASCII alphabet only, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.compact();
        write!(f, "{}-{}", &text[..4], &text[4..])
    }
}

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserCode({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_display_with_a_dash_and_parse_back() {
        for _ in 0..200 {
            let code = UserCode::generate();
            let shown = code.to_string();
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            assert_eq!(UserCode::parse(&shown), Ok(code));
        }
    }

    #[test]
    fn typing_is_forgiving() {
        let code = UserCode::parse("BCDF-GHJK").unwrap();
        for typed in [
            "bcdf-ghjk",
            "BCDFGHJK",
            " bcdf ghjk ",
            "bcdfghjk\n",
            "Bc-Df-Gh-Jk",
        ] {
            assert_eq!(UserCode::parse(typed), Ok(code), "{typed:?}");
        }
        assert_eq!(code.compact(), "BCDFGHJK");
    }

    #[test]
    fn wrong_codes_are_refused() {
        assert_eq!(UserCode::parse("BCDF-GHJ"), Err(UserCodeError::WrongLength));
        assert_eq!(
            UserCode::parse("BCDF-GHJKL"),
            Err(UserCodeError::WrongLength)
        );
        assert_eq!(
            UserCode::parse("ABCD-EFGH"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(
            UserCode::parse("BCDF-GHJ1"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(
            UserCode::parse("ÉCDF-GHJK"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(UserCode::parse(""), Err(UserCodeError::WrongLength));
    }

    #[test]
    fn generated_codes_use_only_the_alphabet() {
        for _ in 0..200 {
            let code = UserCode::generate();
            assert!(
                code.compact()
                    .bytes()
                    .all(|b| USER_CODE_ALPHABET.contains(&b))
            );
        }
    }
}
