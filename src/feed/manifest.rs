//! The feed's manifest and the checks an appliance makes before it serves a list
//! from the feed, in order: the manifest's minisign signature, its serial (above the
//! one serving: no rollback), its expiry, then the list file's signature and sha256,
//! and those of each delta of its chain. Pure: bytes in, a verdict out.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's format version without deltas (what appliances before deltas read).
pub const FORMAT: u32 = 1;
/// The format version of a manifest with a delta chain: an appliance that reads only
/// [`FORMAT`] refuses it ("upgrade fanzha") instead of serving the base without them.
pub const FORMAT_DELTAS: u32 = 2;
/// The manifest's file name in a feed directory.
pub const MANIFEST: &str = "manifest.json";

/// What `fanzha publish` writes next to the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Grows with every publish; an appliance never takes one at or below its own.
    pub serial: u64,
    /// RFC 3339 build time.
    pub built_at: String,
    /// Seconds since the epoch after which the list is stale (kept serving, alerted).
    pub expires_unix: u64,
    /// The same, RFC 3339.
    pub expires_at: String,
    /// The list file (the base, when there are deltas), relative to the manifest.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Its sha256, hex.
    pub sha256: String,
    /// The serial of that list file when deltas follow it (absent: `serial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_serial: Option<u64>,
    /// The deltas from the base to `serial`, in order (see `blocklist::delta`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaRef>,
    /// Names in the list at `serial` (base and deltas).
    pub entries: u64,
    /// … carrying a block rule.
    pub block_entries: u64,
    /// … carrying an allow rule.
    pub allow_entries: u64,
}

impl Manifest {
    /// The serial of the list file.
    pub fn base(&self) -> u64 {
        self.base_serial.unwrap_or(self.serial)
    }
}

/// One delta of a manifest's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaRef {
    /// The delta's serial.
    pub serial: u64,
    /// The serial it applies to.
    pub from_serial: u64,
    /// Its file, relative to the manifest.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Its sha256, hex.
    pub sha256: String,
    /// Names it sets or removes.
    pub changes: u64,
}

/// Why a feed update was refused (the `reason` label of the refusal metric).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A signature that does not verify with the configured key.
    #[error("bad signature on {what}: {why}")]
    Signature {
        /// The manifest or the list file.
        what: &'static str,
        /// What minisign said.
        why: String,
    },
    /// A serial at or below the one serving.
    #[error("serial {got} is not above the serving serial {serving} (a rollback or a replay)")]
    Serial {
        /// The manifest's.
        got: u64,
        /// The appliance's.
        serving: u64,
    },
    /// A manifest past its expiry.
    #[error("the manifest expired at {0}")]
    Expired(String),
    /// A list file whose size or sha256 is not the manifest's.
    #[error("the list file does not match the manifest: {0}")]
    Checksum(String),
    /// A manifest that does not parse, or of another format.
    #[error("not a usable manifest: {0}")]
    Malformed(String),
    /// A verified list the loader would not serve (corrupt, or much smaller than the
    /// serving one).
    #[error("the list did not load: {0}")]
    Load(String),
}

impl Refusal {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Signature { .. } => "signature",
            Refusal::Serial { .. } => "serial",
            Refusal::Expired(_) => "expired",
            Refusal::Checksum(_) => "checksum",
            Refusal::Malformed(_) => "malformed",
            Refusal::Load(_) => "load",
        }
    }
}

/// Verify `data` against the minisign signature `sig` (the `.minisig` file's text).
pub fn verify(
    key: &minisign_verify::PublicKey,
    data: &[u8],
    sig: &str,
    what: &'static str,
) -> Result<(), Refusal> {
    let bad = |why: String| Refusal::Signature { what, why };
    let sig = minisign_verify::Signature::decode(sig).map_err(|e| bad(e.to_string()))?;
    key.verify(data, &sig, false)
        .map_err(|e| bad(e.to_string()))
}

/// The manifest in `data`, if its signature verifies, its serial is above `serving`
/// and it has not expired at `now_unix`.
pub fn check(
    key: &minisign_verify::PublicKey,
    data: &[u8],
    sig: &str,
    serving: u64,
    now_unix: u64,
) -> Result<Manifest, Refusal> {
    verify(key, data, sig, "the manifest")?;
    let m: Manifest =
        serde_json::from_slice(data).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if m.format != FORMAT && m.format != FORMAT_DELTAS {
        return Err(Refusal::Malformed(format!(
            "format {} (this fanzha reads {FORMAT} and {FORMAT_DELTAS}); upgrade fanzha",
            m.format
        )));
    }
    let unsafe_name = |f: &str| f.contains('/') || f.contains("..") || f.is_empty();
    if let Some(f) = std::iter::once(&m.file)
        .chain(m.deltas.iter().map(|d| &d.file))
        .find(|f| unsafe_name(f))
    {
        return Err(Refusal::Malformed(format!("file name {f:?}")));
    }
    // The chain runs from the base to the manifest's serial without a gap.
    let mut at = m.base();
    for d in &m.deltas {
        if d.from_serial != at || d.serial <= at {
            return Err(Refusal::Malformed(format!(
                "delta {} applies to {}, the chain is at {at}",
                d.serial, d.from_serial
            )));
        }
        at = d.serial;
    }
    if at != m.serial || (m.deltas.is_empty() && m.base_serial.is_some_and(|b| b != m.serial)) {
        return Err(Refusal::Malformed(format!(
            "the chain ends at {at}, the manifest's serial is {}",
            m.serial
        )));
    }
    if m.serial <= serving {
        return Err(Refusal::Serial {
            got: m.serial,
            serving,
        });
    }
    if m.expires_unix <= now_unix {
        return Err(Refusal::Expired(m.expires_at.clone()));
    }
    Ok(m)
}

/// Whether `file` (with its signature `sig`) is the one `m` names.
pub fn check_file(
    key: &minisign_verify::PublicKey,
    m: &Manifest,
    file: &[u8],
    sig: &str,
) -> Result<(), Refusal> {
    verify(key, file, sig, "the list file")?;
    matches(file, m.bytes, &m.sha256)
}

/// Whether `file` has the size and sha256 given.
fn matches(file: &[u8], bytes: u64, sha256: &str) -> Result<(), Refusal> {
    if file.len() as u64 != bytes {
        return Err(Refusal::Checksum(format!(
            "{} bytes, the manifest says {bytes}",
            file.len(),
        )));
    }
    let got = hex::encode(Sha256::digest(file));
    if got != sha256 {
        return Err(Refusal::Checksum(format!(
            "sha256 {got}, the manifest says {sha256}"
        )));
    }
    Ok(())
}

/// The delta `file` (with its signature `sig`), if it is the one `d` of `m`'s chain
/// names and it stands on `m`'s base.
pub fn check_delta(
    key: &minisign_verify::PublicKey,
    m: &Manifest,
    d: &DeltaRef,
    file: &[u8],
    sig: &str,
) -> Result<crate::blocklist::delta::Delta, Refusal> {
    verify(key, file, sig, "a delta")?;
    matches(file, d.bytes, &d.sha256)?;
    let delta: crate::blocklist::delta::Delta =
        serde_json::from_slice(file).map_err(|e| Refusal::Malformed(format!("delta: {e}")))?;
    if (delta.serial, delta.from_serial, delta.base_serial) != (d.serial, d.from_serial, m.base())
        || delta.base_sha256 != m.sha256
    {
        return Err(Refusal::Malformed(format!(
            "delta {} is not the one the manifest names (serial {}, from {}, base {})",
            d.file, delta.serial, delta.from_serial, delta.base_serial
        )));
    }
    Ok(delta)
}

/// A publisher's key pair for tests, and signatures made with it.
#[cfg(test)]
pub(crate) mod test_keys {
    pub(crate) struct Keys {
        pub(crate) pk: minisign_verify::PublicKey,
        pub(crate) sk: minisign::SecretKey,
        pub(crate) mpk: minisign::PublicKey,
    }

    pub(crate) fn keys() -> Keys {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let pk = minisign_verify::PublicKey::from_base64(&kp.pk.to_base64()).unwrap();
        Keys {
            pk,
            sk: kp.sk,
            mpk: kp.pk,
        }
    }

    pub(crate) fn sign(k: &Keys, data: &[u8]) -> String {
        minisign::sign(Some(&k.mpk), &k.sk, data, Some("t"), None)
            .unwrap()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{keys, sign};
    use super::*;

    fn manifest(file: &[u8], serial: u64, expires_unix: u64) -> Vec<u8> {
        serde_json::to_vec(&Manifest {
            format: FORMAT,
            serial,
            built_at: "2026-11-30T00:00:00Z".into(),
            expires_unix,
            expires_at: "then".into(),
            file: format!("list-{serial}.fst"),
            bytes: file.len() as u64,
            sha256: hex::encode(Sha256::digest(file)),
            base_serial: None,
            deltas: vec![],
            entries: 1,
            block_entries: 1,
            allow_entries: 0,
        })
        .unwrap()
    }

    #[test]
    fn a_good_update_passes_every_check() {
        let k = keys();
        let file = b"the compiled list".to_vec();
        let m = manifest(&file, 7, 2000);
        let got = check(&k.pk, &m, &sign(&k, &m), 6, 1000).unwrap();
        assert_eq!(got.serial, 7);
        check_file(&k.pk, &got, &file, &sign(&k, &file)).unwrap();
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let k = keys();
        let other = keys();
        let file = b"the compiled list".to_vec();
        let m = manifest(&file, 7, 2000);
        let sig = sign(&k, &m);
        // Signed by another key, or altered after signing.
        let e = check(&k.pk, &m, &sign(&other, &m), 6, 1000).unwrap_err();
        assert_eq!(e.label(), "signature", "{e}");
        let mut tampered = m.clone();
        let at = tampered.iter().position(|&b| b == b'7').unwrap();
        tampered[at] = b'8';
        assert_eq!(
            check(&k.pk, &tampered, &sig, 6, 1000).unwrap_err().label(),
            "signature"
        );
        assert_eq!(
            check(&k.pk, &m, "garbage", 6, 1000).unwrap_err().label(),
            "signature"
        );
        // The same serial again, or an older one: a replay or a rollback.
        for serving in [7, 9] {
            let e = check(&k.pk, &m, &sig, serving, 1000).unwrap_err();
            assert_eq!(e, Refusal::Serial { got: 7, serving });
        }
        // Expired.
        assert_eq!(
            check(&k.pk, &m, &sig, 6, 2000).unwrap_err().label(),
            "expired"
        );
        // The file: another file, a cut one, or one signed by someone else.
        let good = check(&k.pk, &m, &sig, 6, 1000).unwrap();
        let evil = b"the compiled lisT".to_vec();
        let e = check_file(&k.pk, &good, &evil, &sign(&k, &evil)).unwrap_err();
        assert_eq!(e.label(), "checksum", "{e}");
        let cut = &file[..5];
        assert_eq!(
            check_file(&k.pk, &good, cut, &sign(&k, cut))
                .unwrap_err()
                .label(),
            "checksum"
        );
        let e = check_file(&k.pk, &good, &file, &sign(&other, &file)).unwrap_err();
        assert_eq!(e.label(), "signature");
        // A signed manifest naming a path outside the feed.
        let mut bad: Manifest = serde_json::from_slice(&m).unwrap();
        bad.file = "../etc/passwd".into();
        let bad = serde_json::to_vec(&bad).unwrap();
        assert_eq!(
            check(&k.pk, &bad, &sign(&k, &bad), 6, 1000)
                .unwrap_err()
                .label(),
            "malformed"
        );
    }
}
