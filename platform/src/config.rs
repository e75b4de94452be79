//! `fanzha-platform.toml`: every key has a default, so `fanzha-platform serve` runs
//! with no file at all (SQLite in `./platform-state`, loopback only).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What is wrong with a config file: the key, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// A value that does not work.
    #[error("{key}: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong and the fix.
        why: String,
    },
}

/// An appliance allowed to send events.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// Its `[report] appliance` id.
    pub name: String,
    /// A file holding its `[report] secret` (mode 0600). A relative path is looked up
    /// in `$CREDENTIALS_DIRECTORY` first (the packaged unit loads
    /// /etc/fanzha-platform/appliances/ as the credential `appliances`, so
    /// `appliances_NAME.secret`), then next to the config file.
    pub secret_file: PathBuf,
}

/// The config as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address of the HTTP server (events, pages, metrics).
    pub listen: String,
    /// `sqlite:PATH` (default: `state_dir`/platform.db) or `postgres://user@host/db`.
    pub database: String,
    /// Where the SQLite file, the allow list and the local keys live.
    pub state_dir: PathBuf,
    /// The district's name, as the pages show it.
    pub district: String,
    /// Events, cases and reviewed appeals older than this are deleted.
    pub retention: String,
    /// The district's time zone as an offset (days of cases are local days).
    pub utc_offset: String,
    /// How long a login lasts.
    pub session_ttl: String,
    /// Largest request body (the gzip batch), bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Largest unpacked batch, bytes.
    pub max_batch_bytes: usize,
    /// Failed logins per account within `login_window` before it is locked for the rest of it.
    pub login_failures: u32,
    /// The window of `login_failures`.
    pub login_window: String,
    /// The allow list file that accepted appeals write (for `fanzha publish`).
    pub allowlist_file: Option<PathBuf>,
    /// Appliances allowed to send events.
    pub appliances: Vec<ApplianceConfig>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "127.0.0.1:8470".into(),
            database: String::new(),
            state_dir: PathBuf::from("platform-state"),
            district: "本区".into(),
            retention: "180d".into(),
            utc_offset: "+08:00".into(),
            session_ttl: "12h".into(),
            max_body_bytes: 4 << 20,
            max_batch_bytes: 64 << 20,
            login_failures: 5,
            login_window: "15m".into(),
            allowlist_file: None,
            appliances: Vec::new(),
        }
    }
}

/// The checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP address.
    pub listen: SocketAddr,
    /// Database URL.
    pub database: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// The district's name.
    pub district: String,
    /// Retention.
    pub retention: Duration,
    /// Minutes east of UTC.
    pub offset_minutes: i32,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Body cap.
    pub max_body_bytes: usize,
    /// Unpacked cap.
    pub max_batch_bytes: usize,
    /// Login failures allowed per window.
    pub login_failures: u32,
    /// Their window.
    pub login_window: Duration,
    /// The allow list file.
    pub allowlist_file: PathBuf,
    /// Appliances and their secrets.
    pub appliances: Vec<(String, Vec<u8>)>,
}

fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        why: why.into(),
    }
}

fn duration(key: &str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v).map_err(|e| {
        invalid(
            key,
            format!("{v:?} is not a duration ({e}); write e.g. \"180d\" or \"12h\""),
        )
    })
}

/// Where a secret file is: as given when absolute; else under `$CREDENTIALS_DIRECTORY`
/// when it is there (systemd's `LoadCredential=`), else under `base`.
fn secret_path(file: &Path, base: &Path) -> PathBuf {
    if file.is_absolute() {
        return file.to_path_buf();
    }
    std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|d| PathBuf::from(d).join(file))
        .filter(|p| p.exists())
        .unwrap_or_else(|| base.join(file))
}

/// `+08:00` → 480.
pub fn offset_minutes(v: &str) -> Option<i32> {
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60 && h.to_string().len() <= 2).then_some(sign * (h * 60 + m))
}

impl Config {
    /// Read and check `path`, or the defaults with none.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let raw = match path {
            None => RawConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.into(),
                    message: e.to_string(),
                })?
            }
        };
        let base = path.and_then(Path::parent).unwrap_or(Path::new("."));
        Config::check_in(raw, base)
    }

    /// Check every value (relative secret files next to the working directory).
    pub fn check(raw: RawConfig) -> Result<Config, ConfigError> {
        Config::check_in(raw, Path::new("."))
    }

    /// Check every value; relative secret files are looked up in
    /// `$CREDENTIALS_DIRECTORY`, then in `base`.
    pub fn check_in(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let listen = raw.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!(
                    "{:?} is not ADDRESS:PORT; write e.g. \"127.0.0.1:8470\"",
                    raw.listen
                ),
            )
        })?;
        let offset = offset_minutes(&raw.utc_offset).ok_or_else(|| {
            invalid(
                "utc_offset",
                format!("{:?} is not an offset such as \"+08:00\"", raw.utc_offset),
            )
        })?;
        let database = if raw.database.is_empty() {
            format!("sqlite:{}", raw.state_dir.join("platform.db").display())
        } else {
            raw.database.clone()
        };
        let mut appliances = Vec::new();
        for (i, a) in raw.appliances.iter().enumerate() {
            let key = format!("appliances[{i}].secret_file");
            let path = secret_path(&a.secret_file, base);
            let secret = std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    &key,
                    format!(
                        "reading {}: {e}; put the appliance's [report] secret there",
                        path.display()
                    ),
                )
            })?;
            let secret = secret.trim().as_bytes().to_vec();
            if secret.len() < 16 {
                return Err(invalid(
                    &key,
                    "the secret is shorter than 16 bytes; make one with `head -c 32 /dev/urandom | base64`",
                ));
            }
            if a.name.is_empty() || appliances.iter().any(|(n, _)| *n == a.name) {
                return Err(invalid(
                    &format!("appliances[{i}].name"),
                    "empty or given twice; each appliance needs its own name",
                ));
            }
            appliances.push((a.name.clone(), secret));
        }
        if raw.login_failures == 0 {
            return Err(invalid("login_failures", "must be at least 1"));
        }
        Ok(Config {
            listen,
            database,
            allowlist_file: raw
                .allowlist_file
                .clone()
                .unwrap_or_else(|| raw.state_dir.join("allowlists/appeals.txt")),
            state_dir: raw.state_dir,
            district: raw.district,
            retention: duration("retention", &raw.retention)?,
            offset_minutes: offset,
            session_ttl: duration("session_ttl", &raw.session_ttl)?,
            max_body_bytes: raw.max_body_bytes,
            max_batch_bytes: raw.max_batch_bytes,
            login_failures: raw.login_failures,
            login_window: duration("login_window", &raw.login_window)?,
            appliances,
        })
    }

    /// The secret of appliance `name`.
    pub fn secret(&self, name: &str) -> Option<&[u8]> {
        self.appliances
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.offset_minutes, 480);
        assert_eq!(c.retention, Duration::from_secs(180 * 86_400));
        assert!(c.database.starts_with("sqlite:"));
        let bad = RawConfig {
            utc_offset: "8".into(),
            ..RawConfig::default()
        };
        assert!(
            Config::check(bad)
                .unwrap_err()
                .to_string()
                .starts_with("utc_offset")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\nretension = \"1d\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("retension"), "{e}");
        assert_eq!(offset_minutes("-03:30"), Some(-210));
        // The packaged file says what the defaults are.
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/platform.toml");
        let raw: RawConfig = toml::from_str(&std::fs::read_to_string(shipped).unwrap()).unwrap();
        let d = RawConfig::default();
        assert_eq!(
            (
                raw.listen,
                raw.retention,
                raw.utc_offset,
                raw.session_ttl,
                raw.login_failures
            ),
            (
                d.listen,
                d.retention,
                d.utc_offset,
                d.session_ttl,
                d.login_failures
            )
        );
        assert_eq!(
            (raw.max_body_bytes, raw.max_batch_bytes),
            (d.max_body_bytes, d.max_batch_bytes)
        );
        assert_eq!(offset_minutes("+8"), None);
    }
}
