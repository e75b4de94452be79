//! The real binary, started on a config in a temporary directory.

use std::io::Write;

use super::client::get;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "platform-test-secret-0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fanzha-platform"))
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running platform.
pub struct Platform {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
}

impl Platform {
    /// Write a config for `appliances` (each with SECRET) on `database` ("" = SQLite in
    /// `dir`), and start.
    pub fn start(dir: &Path, database: &str, appliances: &[&str]) -> Platform {
        Platform::start_with(dir, database, appliances, "")
    }

    pub fn start_with(dir: &Path, database: &str, appliances: &[&str], more: &str) -> Platform {
        let port = free_port();
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\ndistrict = \"滨江区\"\n{more}\n",
            dir.join("state").display()
        );
        if !database.is_empty() {
            toml.push_str(&format!("database = \"{database}\"\n"));
        }
        for a in appliances {
            let secret = dir.join(format!("{a}.secret"));
            std::fs::write(&secret, SECRET).unwrap();
            toml.push_str(&format!(
                "[[appliances]]\nname = \"{a}\"\nsecret_file = \"{}\"\n",
                secret.display()
            ));
        }
        let config = dir.join("platform.toml");
        std::fs::write(&config, toml).unwrap();
        let mut p = Platform {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.to_path_buf(),
            config,
            child: None,
        };
        p.restart();
        p
    }

    /// Start (again) on the same config and database.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join("platform.log")).unwrap();
        let child = Command::new(bin())
            .args(["--config", self.config.to_str().unwrap(), "serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok((200, _)) = get(self.addr, "/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the platform did not come up: {}", self.log());
    }

    /// Stop it (SIGKILL: nothing is flushed on the way out).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("platform.log")).unwrap_or_default()
    }

    /// `fanzha-platform ARGS` on this config, with `stdin`; (success, output).
    pub fn cli(&self, args: &[&str], stdin: &str) -> (bool, String) {
        let mut c = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The command may exit (refusing its arguments) before reading its input.
        let _ = c.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Add an account with PASSWORD.
    pub fn user(&self, name: &str, role: &str, scope: &str) {
        let (ok, out) = self.cli(
            &["user", "add", name, "--role", role, "--scope", scope],
            &format!("{PASSWORD}\n"),
        );
        assert!(ok, "user add {name}: {out}");
    }

    /// A metric's value (summed over label sets matching `labels`, e.g. `community="缤纷社区"`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, text) = get(self.addr, "/metrics").unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
            })
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.stop();
    }
}
