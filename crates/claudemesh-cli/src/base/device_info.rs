//! What the CLI tells the server about this machine when it asks to sign in
//! (shown on the approval page so the person can recognise the request), and
//! whether this machine can open a browser at all.
//!
//! The host name comes from the kernel or the usual files and variables,
//! without a C dependency; a machine where none of them works is "unknown host".

use claudemesh_api::wire::DeviceCodeRequest;

/// The server accepts 1 to 100 printable characters per field.
const MAX_FIELD_CHARS: usize = 100;

/// Trims, drops control characters and cuts to the server's limit; `None`
/// when nothing is left.
pub fn clean_field(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_FIELD_CHARS)
        .collect();
    let cleaned = cleaned.trim_end().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// This machine's host name, from the first source that has one.
pub fn hostname() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    let from_env = |name: &str| std::env::var(name).ok();
    let from_command = || {
        std::process::Command::new("hostname")
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
    };
    let candidates = [
        from_file("/proc/sys/kernel/hostname"),
        from_file("/etc/hostname"),
        from_env("COMPUTERNAME"),
        from_env("HOSTNAME"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|raw| clean_field(&raw))
        .or_else(|| from_command().and_then(|raw| clean_field(&raw)))
        .unwrap_or_else(|| "unknown host".to_owned())
}

/// The device-code request for this machine; `name` overrides the host name.
pub fn device_request(name: Option<&str>) -> DeviceCodeRequest {
    DeviceCodeRequest {
        device_name: name.and_then(clean_field).unwrap_or_else(hostname),
        device_os: std::env::consts::OS.to_owned(),
        device_arch: std::env::consts::ARCH.to_owned(),
    }
}

/// Whether to try opening a browser, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Browser {
    Open,
    Skip(&'static str),
}

/// Decides whether a browser can be opened: not when asked not to, not over
/// SSH, not on a Linux box without a display, and not when nobody is at a
/// terminal (CI, a pipe).
pub fn browser_decision(
    no_browser: bool,
    env: impl Fn(&str) -> Option<String>,
    os: &str,
    terminal: bool,
) -> Browser {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if no_browser {
        Browser::Skip("--no-browser was given")
    } else if set("SSH_CONNECTION") || set("SSH_TTY") {
        Browser::Skip("this looks like an SSH session")
    } else if matches!(os, "linux" | "freebsd" | "openbsd" | "netbsd" | "dragonfly")
        && !set("DISPLAY")
        && !set("WAYLAND_DISPLAY")
    {
        Browser::Skip("no display was found")
    } else if !terminal {
        Browser::Skip("this is not an interactive terminal")
    } else {
        Browser::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn fields_are_cleaned_to_what_the_server_accepts() {
        assert_eq!(clean_field("  box\n").as_deref(), Some("box"));
        assert_eq!(clean_field("a\u{7}b").as_deref(), Some("ab"));
        assert_eq!(clean_field(" \n\t "), None);
        let long = "x".repeat(300);
        assert_eq!(clean_field(&long).map(|s| s.chars().count()), Some(100));
        let wide = "é".repeat(150);
        assert_eq!(clean_field(&wide).map(|s| s.chars().count()), Some(100));
    }

    #[test]
    fn a_given_device_name_wins_and_os_and_arch_are_filled() {
        let request = device_request(Some(" Build box "));
        assert_eq!(request.device_name, "Build box");
        assert_eq!(request.device_os, std::env::consts::OS);
        assert_eq!(request.device_arch, std::env::consts::ARCH);
        assert!(!device_request(Some("\n")).device_name.is_empty());
        assert!(!hostname().is_empty());
    }

    #[test]
    fn browser_opens_on_a_desktop_terminal() {
        let desktop = env_of(&[("DISPLAY", ":0")]);
        assert_eq!(
            browser_decision(false, &desktop, "linux", true),
            Browser::Open
        );
        assert_eq!(
            browser_decision(false, env_of(&[]), "macos", true),
            Browser::Open
        );
        let wayland = env_of(&[("WAYLAND_DISPLAY", "wayland-0")]);
        assert_eq!(
            browser_decision(false, wayland, "linux", true),
            Browser::Open
        );
    }

    #[test]
    fn browser_is_skipped_when_headless() {
        let desktop = env_of(&[("DISPLAY", ":0")]);
        assert!(matches!(
            browser_decision(true, &desktop, "linux", true),
            Browser::Skip(_)
        ));
        let ssh = env_of(&[
            ("DISPLAY", ":0"),
            ("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22"),
        ]);
        assert_eq!(
            browser_decision(false, ssh, "linux", true),
            Browser::Skip("this looks like an SSH session")
        );
        let ssh_tty = env_of(&[("SSH_TTY", "/dev/pts/1")]);
        assert!(matches!(
            browser_decision(false, ssh_tty, "macos", true),
            Browser::Skip(_)
        ));
        assert_eq!(
            browser_decision(false, env_of(&[("DISPLAY", "")]), "linux", true),
            Browser::Skip("no display was found")
        );
        assert_eq!(
            browser_decision(false, &desktop, "linux", false),
            Browser::Skip("this is not an interactive terminal")
        );
    }
}
