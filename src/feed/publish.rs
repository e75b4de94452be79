//! `fanzha publish` and `fanzha keygen`, on the district's build box: compile the
//! lists and write a feed directory that any static web server can serve:
//!
//! ```text
//! manifest.json            serial, build time, expiry, counts, sha256 of the list
//! manifest.json.minisig    minisign signature (the `minisign` tool verifies it)
//! list-<serial>.fst        the compiled list
//! list-<serial>.fst.minisig
//! ```
//!
//! The list goes first and the manifest last, each by rename, so a reader never sees
//! a manifest naming a file that is not there yet; the previous list stays for the
//! appliances still fetching it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::manifest::{FORMAT, MANIFEST, Manifest};
use crate::blocklist::{self, CompileReport, compile::CompileSpec};

/// A publish or keygen that failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The lists did not compile.
    #[error("compiling the lists")]
    Compile(#[from] blocklist::compile::CompileError),
    /// The key could not be used.
    #[error("the signing key {path}: {why}")]
    Key {
        /// Its file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PublishError {
    let path = path.to_path_buf();
    move |source| PublishError::Io { what, path, source }
}

/// Write `data` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), PublishError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("writing", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into", path))
}

/// A secret key file: made by `fanzha keygen` (unencrypted), or by `minisign -G`
/// (encrypted: the password comes from `password`).
pub fn read_secret_key(
    path: &Path,
    password: Option<String>,
) -> Result<minisign::SecretKey, PublishError> {
    let bad = |why: String| PublishError::Key {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    let sk_box = minisign::SecretKeyBox::from_string(&text).map_err(|e| bad(e.to_string()))?;
    match password {
        Some(p) => sk_box.into_secret_key(Some(p)),
        None => sk_box.into_unencrypted_secret_key(),
    }
    .map_err(|e| {
        bad(format!(
            "{e} (a key from `minisign -G` is encrypted: give its password in FANZHA_KEY_PASSWORD)"
        ))
    })
}

/// What a publish did.
#[derive(Debug)]
pub struct Published {
    /// The manifest written.
    pub manifest: Manifest,
    /// The compile's report.
    pub report: CompileReport,
}

/// Compile `spec` into the feed directory `dir` and sign it with `sk`; the list
/// expires `valid` after `now`.
pub fn publish(
    spec: &CompileSpec,
    dir: &Path,
    sk: &minisign::SecretKey,
    valid: Duration,
    now: SystemTime,
) -> Result<Published, PublishError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let previous: Option<Manifest> = std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let now_unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Time-based, so that a rebuilt build box still goes up; +1 within a second.
    let serial = now_unix.max(previous.as_ref().map_or(0, |m| m.serial + 1));
    let file = format!("list-{serial}.fst");
    let list_path = dir.join(&file);
    let tmp = dir.join(format!(".{file}.tmp"));
    let report = blocklist::compile(spec, &tmp)?;
    let bytes = std::fs::read(&tmp).map_err(io("reading", &tmp))?;
    let sign = |data: &[u8], comment: &str| -> Result<String, PublishError> {
        minisign::sign(None, sk, data, Some(comment), None)
            .map(|s| s.to_string())
            .map_err(|e| PublishError::Key {
                path: dir.to_path_buf(),
                why: e.to_string(),
            })
    };
    write_atomic(
        &dir.join(format!("{file}.minisig")),
        sign(&bytes, &format!("fanzha list serial {serial}"))?.as_bytes(),
    )?;
    std::fs::rename(&tmp, &list_path).map_err(io("renaming into", &list_path))?;
    let expires = now + valid;
    let manifest = Manifest {
        format: FORMAT,
        serial,
        built_at: humantime::format_rfc3339_seconds(now).to_string(),
        expires_unix: now_unix + valid.as_secs(),
        expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
        file,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        entries: report.entries,
        block_entries: report.block_entries,
        allow_entries: report.allow_entries,
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    // The signature first: a reader that sees the new manifest with the old
    // signature refuses it and takes it at its next poll.
    write_atomic(
        &dir.join(format!("{MANIFEST}.minisig")),
        sign(&text, &format!("fanzha manifest serial {serial}"))?.as_bytes(),
    )?;
    write_atomic(&dir.join(MANIFEST), &text)?;
    // Web servers derive the ETag from the size and the mtime in seconds, and two
    // publishes within a second can give manifests of one size: the serial (which
    // grows by at least one each time) as the mtime keeps every ETag new.
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(serial);
    let path = dir.join(MANIFEST);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(stamp))
        .map_err(io("setting the time of", &path))?;
    prune(dir, serial, previous.map(|m| m.serial));
    Ok(Published { manifest, report })
}

/// Remove the list files older than the previous publish.
fn prune(dir: &Path, serial: u64, previous: Option<u64>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(n) = name
            .strip_prefix("list-")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if n != serial && Some(n) != previous {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Write a new key pair: `<prefix>.key` (secret, unencrypted, mode 0600) and
/// `<prefix>.pub` (the public key, as `minisign -G` writes it). Refuses to overwrite.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf, String), PublishError> {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| PublishError::Key {
        path: prefix.to_path_buf(),
        why: e.to_string(),
    })?;
    let boxed = |r: minisign::Result<String>| {
        r.map_err(|e| PublishError::Key {
            path: prefix.to_path_buf(),
            why: e.to_string(),
        })
    };
    let sk_text = boxed(
        kp.sk
            .to_box(Some("fanzha feed secret key"))
            .map(|b| b.to_string()),
    )?;
    let pk_text = boxed(kp.pk.to_box().map(|b| b.to_string()))?;
    let (skp, pkp) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    for (path, text, mode) in [(&skp, &sk_text, 0o600), (&pkp, &pk_text, 0o644)] {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(io("creating (it must not exist yet)", path))?;
        f.write_all(text.as_bytes()).map_err(io("writing", path))?;
    }
    Ok((skp, pkp, kp.pk.to_base64()))
}
