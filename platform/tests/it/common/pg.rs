//! A PostgreSQL server of Debian's `postgresql` package, started for one test in a
//! temporary directory on a loopback port, as an unprivileged user (`nobody` when the
//! test runs as root, which initdb refuses), and stopped at the end.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::free_port;

pub struct Pg {
    pub url: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<String>,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL's server is needed for this test and was not found under /usr/lib/postgresql; run scripts/test.sh, which installs Debian's postgresql")
    })
}

impl Pg {
    pub fn start() -> Pg {
        let bin = pg_bin();
        let root = unsafe { libc_geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("fanzha-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let as_user = root.then(|| "nobody".to_string());
        if root {
            let ok = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL directory");
        }
        let data = dir.path().join("data");
        let port = free_port();
        let pg = Pg {
            url: format!("postgresql://fanzha@127.0.0.1:{port}/fanzha"),
            dir,
            bin,
            as_user,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "fanzha",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=on",
            pg.dir.path().display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                pg.dir.path().join("log").to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
        pg.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "fanzha",
                "fanzha",
            ],
        );
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut c = match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = c.args(args).current_dir(self.dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
        }));
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
