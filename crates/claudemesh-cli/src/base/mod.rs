//! The bottom layer: what every other module uses and which uses nothing of
//! the crate but itself (exit codes and errors, output, time, files written
//! privately, key pairs, the server URL, command-line words, display).

pub mod args;
pub mod backoff;
pub mod closed_stdout;
pub mod device_info;
pub mod display;
pub mod exit;
pub mod http_agent;
pub mod keys;
pub mod menu;
pub mod output;
pub mod private_file;
pub mod server_url;
pub mod when;
