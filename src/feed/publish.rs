//! `fanzha publish` and `fanzha keygen`, on the district's build box: compile the
//! lists and write a feed directory that any static web server can serve:
//!
//! ```text
//! manifest.json            serial, build time, expiry, counts, sha256 of the list
//! manifest.json.minisig    minisign signature (the `minisign` tool verifies it)
//! list-<serial>.fst        the compiled list
//! list-<serial>.fst.minisig
//! delta-<serial>.json      with --delta: the changes since the previous publish
//! delta-<serial>.json.minisig
//! ```
//!
//! With `--delta`, a publish whose changes are small writes only a delta (see
//! `blocklist::delta`), and the manifest names the last full list (the base) and the
//! chain of deltas since; appliances that have the base fetch only the deltas they
//! lack. When the chain would change more than a fifth of the base's names, the
//! publish is a full list again, which starts a new chain.
//!
//! The list goes first and the manifest last, each by rename, so a reader never sees
//! a manifest naming a file that is not there yet; the files of the previous
//! manifest stay for the appliances still fetching them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::manifest::{DeltaRef, FORMAT, FORMAT_DELTAS, MANIFEST, Manifest};
use crate::blocklist::{self, Blocklist, CompileReport, compile::CompileSpec, delta};

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
    /// With `--delta`: the names the delta changes, or why a full list was
    /// published instead.
    pub delta: Option<Result<u64, String>>,
}

/// A chain's deltas may change at most this share of the base's names.
const MAX_CHAIN_SHARE: f64 = 0.2;

/// The delta from the state `prev` describes (its base and chain, read from `dir`)
/// to the compiled list at `new`, as file bytes and the manifest's reference.
fn make_delta(
    dir: &Path,
    prev: &Manifest,
    new: &Path,
    serial: u64,
) -> Result<(Vec<u8>, DeltaRef), String> {
    let base_path = dir.join(&prev.file);
    let base_bytes =
        std::fs::read(&base_path).map_err(|e| format!("the base {}: {e}", base_path.display()))?;
    if hex::encode(Sha256::digest(&base_bytes)) != prev.sha256 {
        return Err(format!(
            "the base {} is not the one the manifest names",
            base_path.display()
        ));
    }
    let base = Blocklist::from_bytes(base_bytes, true).map_err(|e| e.to_string())?;
    let chain = prev
        .deltas
        .iter()
        .map(|d| {
            let b = std::fs::read(dir.join(&d.file)).map_err(|e| format!("{}: {e}", d.file))?;
            serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", d.file))
        })
        .collect::<Result<Vec<delta::Delta>, String>>()?;
    let at = base.with_deltas(&chain).map_err(|e| e.to_string())?;
    let new = Blocklist::open(new, false).map_err(|e| e.to_string())?;
    let mut d = delta::diff(&at, &new).map_err(|e| e.to_string())?;
    let changes: u64 = prev.deltas.iter().map(|r| r.changes).sum::<u64>() + d.set.len() as u64;
    let limit = (base.meta().entries as f64 * MAX_CHAIN_SHARE) as u64;
    if changes > limit {
        return Err(format!(
            "the chain would change {changes} names, more than a fifth of the base's {}",
            base.meta().entries
        ));
    }
    d.base_serial = prev.base();
    d.base_sha256.clone_from(&prev.sha256);
    d.from_serial = prev.serial;
    d.serial = serial;
    let bytes = serde_json::to_vec(&d).map_err(|e| e.to_string())?;
    let r = DeltaRef {
        serial,
        from_serial: prev.serial,
        file: format!("delta-{serial}.json"),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
        changes: d.set.len() as u64,
    };
    Ok((bytes, r))
}

/// Compile `spec` into the feed directory `dir` and sign it with `sk`; the list
/// expires `valid` after `now`. With `as_delta`, only the changes since the previous
/// publish when they are small enough (see the module's text).
pub fn publish(
    spec: &CompileSpec,
    dir: &Path,
    sk: &minisign::SecretKey,
    valid: Duration,
    now: SystemTime,
    as_delta: bool,
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
    let sign = |data: &[u8], comment: &str| -> Result<String, PublishError> {
        minisign::sign(None, sk, data, Some(comment), None)
            .map(|s| s.to_string())
            .map_err(|e| PublishError::Key {
                path: dir.to_path_buf(),
                why: e.to_string(),
            })
    };
    let expires = now + valid;
    let mut manifest = Manifest {
        format: FORMAT,
        serial,
        built_at: humantime::format_rfc3339_seconds(now).to_string(),
        expires_unix: now_unix + valid.as_secs(),
        expires_at: humantime::format_rfc3339_seconds(expires).to_string(),
        file: file.clone(),
        bytes: 0,
        sha256: String::new(),
        base_serial: None,
        deltas: Vec::new(),
        entries: report.entries,
        block_entries: report.block_entries,
        allow_entries: report.allow_entries,
    };
    let delta = match (as_delta, &previous) {
        (true, Some(prev)) => Some(make_delta(dir, prev, &tmp, serial)),
        (true, None) => Some(Err("there is no earlier publish to start from".to_string())),
        (false, _) => None,
    };
    let changes = match (delta, &previous) {
        (Some(Ok((bytes, r))), Some(prev)) => {
            let _ = std::fs::remove_file(&tmp);
            write_atomic(
                &dir.join(format!("{}.minisig", r.file)),
                sign(&bytes, &format!("fanzha delta serial {serial}"))?.as_bytes(),
            )?;
            write_atomic(&dir.join(&r.file), &bytes)?;
            let changes = r.changes;
            manifest.format = FORMAT_DELTAS;
            manifest.file.clone_from(&prev.file);
            manifest.bytes = prev.bytes;
            manifest.sha256.clone_from(&prev.sha256);
            manifest.base_serial = Some(prev.base());
            manifest.deltas = prev.deltas.iter().cloned().chain([r]).collect();
            Some(Ok(changes))
        }
        (delta, _) => {
            let bytes = std::fs::read(&tmp).map_err(io("reading", &tmp))?;
            write_atomic(
                &dir.join(format!("{file}.minisig")),
                sign(&bytes, &format!("fanzha list serial {serial}"))?.as_bytes(),
            )?;
            std::fs::rename(&tmp, &list_path).map_err(io("renaming into", &list_path))?;
            manifest.bytes = bytes.len() as u64;
            manifest.sha256 = hex::encode(Sha256::digest(&bytes));
            delta.map(|d| d.map(|_| 0))
        }
    };
    write_manifest(dir, &manifest, &sign)?;
    prune(dir, &manifest, previous.as_ref());
    Ok(Published {
        manifest,
        report,
        delta: changes,
    })
}

/// Signs bytes with a comment, giving the `.minisig` text.
type Signer<'a> = dyn Fn(&[u8], &str) -> Result<String, PublishError> + 'a;

/// Write the manifest and its signature (made by `sign`).
fn write_manifest(dir: &Path, manifest: &Manifest, sign: &Signer<'_>) -> Result<(), PublishError> {
    let text = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    // The signature first: a reader that sees the new manifest with the old
    // signature refuses it and takes it at its next poll.
    write_atomic(
        &dir.join(format!("{MANIFEST}.minisig")),
        sign(
            &text,
            &format!("fanzha manifest serial {}", manifest.serial),
        )?
        .as_bytes(),
    )?;
    write_atomic(&dir.join(MANIFEST), &text)?;
    // Web servers derive the ETag from the size and the mtime in seconds, and two
    // publishes within a second can give manifests of one size: the serial (which
    // grows by at least one each time) as the mtime keeps every ETag new.
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(manifest.serial);
    let path = dir.join(MANIFEST);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(stamp))
        .map_err(io("setting the time of", &path))?;
    Ok(())
}

/// Remove the list and delta files that neither this manifest nor the previous one
/// names.
fn prune(dir: &Path, now: &Manifest, previous: Option<&Manifest>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep: Vec<&str> = [Some(now), previous]
        .into_iter()
        .flatten()
        .flat_map(|m| {
            std::iter::once(m.file.as_str()).chain(m.deltas.iter().map(|d| d.file.as_str()))
        })
        .collect();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("list-") || name.starts_with("delta-")) {
            continue;
        }
        let file = name.strip_suffix(".minisig").unwrap_or(&name);
        if !keep.contains(&file) {
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
