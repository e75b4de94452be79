//! Snapshots: the last good compile, kept in the state directory as
//! `last-good-<fingerprint>.fst` with a JSON sidecar, so that a restart serves at
//! once and compiles only when the lists changed. (The list that serves right now
//! is the [`Handle`](super::Handle)'s; "snapshot" means only this file.)

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::compile::CompileReport;

/// How a start used the snapshot of the last compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotUse {
    /// The lists are as they were at that compile: nothing to compile.
    Current,
    /// The lists (or settings, or fanzha) changed since: compile them now.
    Stale,
}

/// Sidecar of a snapshot: what the metrics showed after its compile.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct SnapshotInfo {
    pub(super) entries: u64,
    pub(super) skipped_lines: u64,
    pub(super) refused_rules: u64,
    pub(super) compiled_unix: u64,
    /// Skipped lines by reason.
    #[serde(default)]
    pub(super) skipped: std::collections::BTreeMap<String, u64>,
}

pub(super) const SNAPSHOT_PREFIX: &str = "last-good-";

/// Keep `compiled` as the snapshot `last-good-<fingerprint>.fst` of the state
/// directory (a hard link: no copy), with its sidecar, replacing older snapshots.
pub(super) fn save(
    state: &Path,
    compiled: &Path,
    fp: u64,
    report: &CompileReport,
    entries: u64,
) -> std::io::Result<()> {
    let final_path = state.join(format!("{SNAPSHOT_PREFIX}{fp:016x}.fst"));
    let info = SnapshotInfo {
        entries,
        skipped_lines: report.skipped_total(),
        refused_rules: report.refused.len() as u64,
        compiled_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        skipped: report
            .skipped
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    };
    let tmp = state.join(format!(".{SNAPSHOT_PREFIX}{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    fs::write(&tmp, serde_json::to_vec(&info).unwrap_or_default())?;
    fs::rename(&tmp, final_path.with_extension("json"))?;
    let _ = fs::remove_file(&tmp);
    fs::hard_link(compiled, &tmp)?;
    fs::rename(&tmp, &final_path)?;
    for e in fs::read_dir(state)?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let p = e.path();
        if n.starts_with(SNAPSHOT_PREFIX)
            && p != final_path
            && p != final_path.with_extension("json")
        {
            let _ = fs::remove_file(p);
        }
    }
    Ok(())
}

/// The snapshot of the state directory and its fingerprint (the newest if several).
pub(super) fn find(state: &Path) -> Option<(PathBuf, u64)> {
    let mut best: Option<(SystemTime, PathBuf, u64)> = None;
    for e in fs::read_dir(state).ok()?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(hex) = n
            .strip_prefix(SNAPSHOT_PREFIX)
            .and_then(|r| r.strip_suffix(".fst"))
        else {
            continue;
        };
        let Ok(fp) = u64::from_str_radix(hex, 16) else {
            continue;
        };
        let t = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(bt, _, _)| t > *bt) {
            best = Some((t, e.path(), fp));
        }
    }
    best.map(|(_, p, fp)| (p, fp))
}
