//! Words given on the command line, checked before they go anywhere: a
//! mesh slug, an invite link.

use crate::base::exit::{CliError, CliResult};
use claudemesh_api::Slug;

/// A slug given on the command line, checked before it goes into a path.
pub fn slug_arg(text: &str, flag: &str) -> CliResult<Slug> {
    Slug::parse(text.trim())
        .map_err(|err| CliError::invalid_args(format!("Invalid {flag} {text:?}: {err}")))
}

/// An invite link (`https://host/i/<code>`), as `claudemesh <link>` takes.
pub fn looks_like_invite(word: &str) -> bool {
    (word.starts_with("https://") || word.starts_with("http://")) && word.contains("/i/")
}
