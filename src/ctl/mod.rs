//! `fanzha ctl`: talk to the running daemon over a Unix socket, like
//! `unbound-control`. One request per connection: a JSON line
//! `{"cmd":"lookup","args":["name"]}`, answered by one JSON line [`Reply`] carrying
//! the text for people, the data for `--json`, and the exit status.
//!
//! - [`command`]: the commands, typed once for the command line, the wire and the
//!   dispatch.
//! - [`commands`]: what each command does to the live state, and its text (no socket).
//! - [`server`]: the socket in the daemon.
//! - [`client`]: the `fanzha ctl` side.

use serde::{Deserialize, Serialize};

pub mod client;
pub mod command;
pub mod commands;

pub use command::Command;
pub mod server;

/// Exit status: the command was done (`lookup`: every name is allowed).
pub const EXIT_OK: u8 = 0;
/// Exit status of `lookup` when some name is blocked.
pub const EXIT_BLOCKED: u8 = 1;
/// Exit status: the daemon refused or failed the command (a bad argument, a
/// config that does not load on `reload`).
pub const EXIT_FAILED: u8 = 2;
/// Exit status: the daemon could not be reached (not running, another socket path,
/// no permission on the socket).
pub const EXIT_UNREACHABLE: u8 = 3;

/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 64 * 1024;

/// One command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    /// The command (`status`, `lookup`, …).
    pub cmd: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Exit status for `fanzha ctl` ([`EXIT_OK`], [`EXIT_BLOCKED`], [`EXIT_FAILED`]).
    pub exit: u8,
    /// What to print for people.
    pub text: String,
    /// What `--json` prints.
    pub data: serde_json::Value,
}

impl Reply {
    /// A done command.
    pub fn ok(text: String, data: serde_json::Value) -> Reply {
        Reply {
            exit: EXIT_OK,
            text,
            data,
        }
    }

    /// A refused or failed command, saying why.
    pub fn failed(why: impl Into<String>) -> Reply {
        let why = why.into();
        Reply {
            exit: EXIT_FAILED,
            data: serde_json::json!({ "error": why }),
            text: why,
        }
    }
}
