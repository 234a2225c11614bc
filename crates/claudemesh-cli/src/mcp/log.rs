//! The MCP server's log: stderr (Claude Code keeps it) and `mcp.log` in the
//! session directory; never stdout, which carries MCP frames only.

use crate::stores::session_dir::MCP_LOG_FILE;
use std::io::Write;
use std::sync::Mutex;

/// Log lines to stderr and `mcp.log`, never stdout.
pub struct Logger {
    file: Mutex<Option<std::fs::File>>,
}

impl Logger {
    pub fn open(dir: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(MCP_LOG_FILE))
            .ok();
        Self {
            file: Mutex::new(file),
        }
    }

    pub fn line(&self, text: &str) {
        let stamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = format!("{stamp} claudemesh mcp: {text}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(file) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}
