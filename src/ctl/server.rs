//! The control socket in the daemon: a Unix socket (mode 0660, so that only the
//! service's user and group, and root, can use it; nothing on the network). One
//! request line and one reply line per connection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::commands::{self, Live};
use super::{Command, MAX_REQUEST, Reply, Request};

/// Connections served at once; more wait in the listen queue.
const AT_ONCE: usize = 8;
/// Longest a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Cannot open the control socket.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on the control socket {path}: {source}; check that its directory exists and is writable by the service (RuntimeDirectory=fanzha), or set [control] socket"
)]
pub struct BindError {
    path: PathBuf,
    source: std::io::Error,
}

/// Bind the socket at `path`, replacing a socket file left by an earlier run, and
/// make it mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let err = |source| BindError {
        path: path.to_path_buf(),
        source,
    };
    // Its directory, when missing (the embedded defaults' runtime directory), is
    // made for this user alone.
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    // A socket file outlives its process; a live daemon already holds the DNS port,
    // so one left here is stale. Anything else at the path is not ours to remove.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if m.file_type().is_socket() {
            std::fs::remove_file(path).map_err(err)?;
        }
    }
    let l = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(l)
}

/// Serve requests on `listener` until `shutdown`, then remove the socket file.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    live: Arc<Live>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let live = live.clone();
        tokio::spawn(async move {
            if let Err(e) = one(stream, &live).await {
                tracing::debug!(error = %e, "control socket: connection ended early");
            }
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Read one request, do it, write the reply.
async fn one(stream: UnixStream, live: &Live) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = Vec::new();
    let mut r = BufReader::new(r).take(MAX_REQUEST as u64 + 1);
    let read = tokio::time::timeout(READ_TIMEOUT, r.read_until(b'\n', &mut line)).await;
    let reply = match read {
        Err(_) => Reply::failed("no request within 5 s"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) if line.len() > MAX_REQUEST => {
            Reply::failed(format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => match serde_json::from_slice::<Request>(&line) {
            Ok(req) => match Command::from_request(&req) {
                Ok(cmd) => {
                    // What changes the daemon is logged; what only reads it is not.
                    if cmd.changes_state() {
                        tracing::info!(?cmd, "control command");
                    } else {
                        tracing::debug!(?cmd, "control command");
                    }
                    commands::run(live, &cmd).await
                }
                Err(why) => Reply::failed(why),
            },
            Err(e) => Reply::failed(format!("not a control request ({e})")),
        },
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}
