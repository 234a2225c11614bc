//! Mesh slugs: the handle the CLI uses (`platform-team`).
//!
//! A slug matches `^[a-z0-9][a-z0-9-]{1,39}$`. One is derived from the mesh
//! name when none is given.

use std::fmt;

pub const MAX_SLUG_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlugError;

impl fmt::Display for SlugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a slug is 2 to 40 characters of a-z, 0-9 and -, starting with a letter or digit",
        )
    }
}

impl std::error::Error for SlugError {}

impl Slug {
    pub fn parse(text: &str) -> Result<Self, SlugError> {
        let valid = (2..=MAX_SLUG_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(SlugError)
        }
    }

    /// Derives a slug from a display name: "Platform team" → `platform-team`.
    /// Letters with accents keep their base letter; anything else becomes a
    /// dash. `None` when too little of the name survives.
    pub fn from_name(name: &str) -> Option<Self> {
        let mut slug = String::new();
        for ch in name.chars().flat_map(char::to_lowercase) {
            let ch = fold_accent(ch);
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                slug.push(ch);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.truncate(MAX_SLUG_LEN);
        Self::parse(slug.trim_end_matches('-')).ok()
    }

    /// The slug with `-n` appended, shortened so it stays valid.
    pub fn with_suffix(&self, n: u32) -> Self {
        let suffix = format!("-{n}");
        let mut base = self.0.clone();
        base.truncate(MAX_SLUG_LEN - suffix.len());
        Self(format!("{}{suffix}", base.trim_end_matches('-')))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn fold_accent(ch: char) -> char {
    match ch {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_slugs() {
        let cases = [
            ("Platform team", "platform-team"),
            ("  CI run #42 ", "ci-run-42"),
            ("Équipe Ñandú", "equipe-nandu"),
            ("a--b", "a-b"),
        ];
        for (name, slug) in cases {
            assert_eq!(Slug::from_name(name).unwrap().as_str(), slug, "{name}");
        }
        assert_eq!(Slug::from_name("!!!"), None);
        assert_eq!(Slug::from_name("x"), None);
        assert_eq!(
            Slug::from_name(&"long ".repeat(20)).unwrap().as_str().len(),
            39
        );
    }

    #[test]
    fn slugs_are_checked() {
        for good in ["ab", "platform-team", "a1", &"a".repeat(40)] {
            assert!(Slug::parse(good).is_ok(), "{good}");
        }
        for bad in ["a", "-ab", "Ab", "a b", "a_b", &"a".repeat(41), ""] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suffixes_keep_slugs_valid() {
        let slug = Slug::parse("platform-team").unwrap();
        assert_eq!(slug.with_suffix(2).as_str(), "platform-team-2");
        let long = Slug::parse(&"a".repeat(40)).unwrap();
        let suffixed = long.with_suffix(12);
        assert_eq!(suffixed.as_str().len(), 40);
        assert!(Slug::parse(suffixed.as_str()).is_ok());
    }
}
