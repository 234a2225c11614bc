//! Languages of the pages and mails: English and Spanish.
//!
//! The language comes from `?lang=` (which also sets the `lang` cookie), then
//! that cookie, then `Accept-Language`, then English. Every text lives in
//! `locales/{en,es}/*.ftl` (Fluent), compiled into the binary; code and
//! templates only name message ids.

use crate::http::cookies::{LANG_COOKIE, cookie};
use axum::http::{HeaderMap, header};
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader, static_loader};
use std::borrow::Cow;
use std::collections::HashMap;

static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Unicode isolation marks around arguments would end up inside
        // attribute values and copied text.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// The language's own name, as shown in the switcher.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Es => "Español",
        }
    }

    /// `es`, `ES`, `es-MX`, `es_419` → Spanish; anything unsupported → `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let primary = text.trim().split(['-', '_']).next()?;
        Self::ALL
            .into_iter()
            .find(|lang| primary.eq_ignore_ascii_case(lang.code()))
    }

    fn langid(self) -> LanguageIdentifier {
        match self {
            Self::En => fluent_templates::langid!("en"),
            Self::Es => fluent_templates::langid!("es"),
        }
    }

    /// The text of a message.
    pub fn t(self, key: &str) -> String {
        LOCALES.lookup(&self.langid(), key)
    }

    /// The text of a message with arguments (`{ $name }` in the .ftl file).
    pub fn t_args(self, key: &str, args: &[(&'static str, FluentValue<'static>)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue<'static>> = args
            .iter()
            .map(|(name, value)| (Cow::Borrowed(*name), value.clone()))
            .collect();
        LOCALES.lookup_with_args(&self.langid(), key, &args)
    }
}

/// What the request says about its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub lang: Lang,
    /// Set when `?lang=` named a supported language: remember it in a cookie.
    pub from_query: bool,
}

/// Picks the language: `?lang=`, then the cookie, then `Accept-Language`.
pub fn negotiate(query_lang: Option<&str>, headers: &HeaderMap) -> Negotiated {
    if let Some(lang) = query_lang.and_then(Lang::parse) {
        return Negotiated {
            lang,
            from_query: true,
        };
    }
    let lang = cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(from_accept_language)
        })
        .unwrap_or(Lang::En);
    Negotiated {
        lang,
        from_query: false,
    }
}

/// The supported language with the highest weight in an `Accept-Language`
/// header (`es-ES,es;q=0.9,en;q=0.8`); earlier entries win ties.
fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for entry in header.split(',').take(32) {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|param| param.trim().strip_prefix("q="))
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
            .filter(|q| q.is_finite() && *q > 0.0);
        let (Some(lang), Some(weight)) = (Lang::parse(tag), weight) else {
            continue;
        };
        if best.is_none_or(|(_, best_weight)| weight > best_weight) {
            best = Some((lang, weight));
        }
    }
    best.map(|(lang, _)| lang)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn query_beats_cookie_beats_accept_language() {
        let both = headers(&[(header::COOKIE, "lang=es"), (header::ACCEPT_LANGUAGE, "en")]);
        assert_eq!(negotiate(Some("en"), &both).lang, Lang::En);
        assert!(negotiate(Some("en"), &both).from_query);
        assert_eq!(negotiate(None, &both).lang, Lang::Es);
        assert!(!negotiate(None, &both).from_query);
        let accept = headers(&[(header::ACCEPT_LANGUAGE, "es-ES,es;q=0.9,en;q=0.8")]);
        assert_eq!(negotiate(None, &accept).lang, Lang::Es);
        assert_eq!(negotiate(Some("fr"), &accept).lang, Lang::Es);
        assert_eq!(negotiate(None, &HeaderMap::new()).lang, Lang::En);
    }

    #[test]
    fn accept_language_weights_are_honoured() {
        assert_eq!(
            from_accept_language("fr, en;q=0.5, es;q=0.7"),
            Some(Lang::Es)
        );
        assert_eq!(from_accept_language("es;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(from_accept_language("fr, de"), None);
        assert_eq!(
            from_accept_language("es-419;q=nonsense, en"),
            Some(Lang::En)
        );
        assert_eq!(from_accept_language(""), None);
    }

    #[test]
    fn arguments_are_substituted_without_isolation_marks() {
        let text = Lang::En.t_args("signed-in-as", &[("name", "Ana".into())]);
        assert!(text.contains("Ana"), "{text}");
        assert!(!text.contains('\u{2068}'), "{text:?}");
    }

    /// Message ids defined in one language's .ftl files.
    fn ids(lang: &str) -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("locales")
            .join(lang);
        let mut ids = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some((id, _)) = line.split_once(" =")
                    && !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    ids.insert(id.to_owned());
                }
            }
        }
        ids
    }

    #[test]
    fn english_and_spanish_define_the_same_messages() {
        let en = ids("en");
        let es = ids("es");
        assert!(en.len() > 50, "found only {} ids", en.len());
        let missing_es: Vec<_> = en.difference(&es).collect();
        let missing_en: Vec<_> = es.difference(&en).collect();
        assert!(missing_es.is_empty(), "missing in es: {missing_es:?}");
        assert!(missing_en.is_empty(), "missing in en: {missing_en:?}");
    }

    /// Every `t("id")` / `t_args("id"` (and the `t_with_code` forms) in the templates and page code names a
    /// message that exists, so no page ever shows "Unknown localization key".
    #[test]
    fn every_message_used_is_defined() {
        let defined = ids("en");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["templates", "src/pages"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        let mut used = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // The id may be on the next line (rustfmt breaks long calls).
            for marker in [".t(", ".t_args(", ".t_with_code(", ".t_with_codes("] {
                for (at, _) in text.match_indices(marker) {
                    let Some(rest) = text[at + marker.len()..].trim_start().strip_prefix('"')
                    else {
                        continue;
                    };
                    let id = &rest[..rest.find('"').unwrap()];
                    // Not an id: this test's own marker strings.
                    let is_id = id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if id.is_empty() || id == "id" || !is_id {
                        continue;
                    }
                    used += 1;
                    assert!(
                        defined.contains(id),
                        "{} uses undefined message {id:?}",
                        file.display()
                    );
                }
            }
        }
        assert!(used > 50, "found only {used} uses");
    }
}
