//! The `fanzha ctl` side: send one request to the daemon's socket and read the reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Reply, Request};

/// The daemon could not be reached, or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, nobody listening, or no permission.
    #[error("cannot reach fanzha at {path}: {source}; {hint}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The connection broke or the answer was not a reply.
    #[error("no usable answer from fanzha at {path}: {why}")]
    Answer {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// How long to wait for an answer: a reload compiles the lists first.
fn patience(cmd: &str) -> Duration {
    if cmd == "reload" {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(30)
    }
}

/// Send `req` to the daemon listening on `path` and return its reply.
pub fn ask(path: &Path, req: &Request) -> Result<Reply, ClientError> {
    let connect = |source: std::io::Error| {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "the socket is for root and the service's group; run it with sudo"
            }
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                "is fanzha running (systemctl status fanzha), with this config's [control] socket?"
            }
            _ => "check [control] socket in the config",
        };
        ClientError::Connect {
            path: path.to_path_buf(),
            source,
            hint,
        }
    };
    let answer = |why: String| ClientError::Answer {
        path: path.to_path_buf(),
        why,
    };
    let mut s = UnixStream::connect(path).map_err(connect)?;
    s.set_read_timeout(Some(patience(&req.cmd)))
        .map_err(|e| answer(e.to_string()))?;
    let mut line = serde_json::to_vec(req).map_err(|e| answer(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line).map_err(|e| answer(e.to_string()))?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .map_err(|e| answer(e.to_string()))?;
    if reply.is_empty() {
        return Err(answer("the connection closed without a reply".into()));
    }
    serde_json::from_str(&reply).map_err(|e| answer(format!("{e}: {reply:?}")))
}
