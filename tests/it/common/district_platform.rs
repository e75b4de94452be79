//! The real district platform (`fanzha-platform`, the workspace's other binary) on
//! loopback, with a district account that logs in through its form.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::*;
use super::platform::SECRET;

pub const PLATFORM_PASSWORD: &str = "district officer password";

/// The binary, built by `cargo test --workspace` next to this test's own.
pub fn platform_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("fanzha-platform");
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test.sh does), which builds fanzha-platform",
        p.display()
    );
    p
}

pub struct DistrictPlatform {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl DistrictPlatform {
    /// Start on a fresh SQLite database in `dir`, taking events from `appliances`
    /// (each with SECRET), with the district account `dora`.
    pub fn start(dir: &Path, appliances: &[&str]) -> DistrictPlatform {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n",
            dir.join("state").display()
        );
        for a in appliances {
            let f = dir.join(format!("{a}.secret"));
            std::fs::write(&f, SECRET).unwrap();
            toml.push_str(&format!(
                "[[appliances]]\nname = \"{a}\"\nsecret_file = \"{}\"\n",
                f.display()
            ));
        }
        let config = dir.join("platform.toml");
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(platform_bin())
            .args([
                "--config",
                config.to_str().unwrap(),
                "user",
                "add",
                "dora",
                "--role",
                "district",
            ])
            .env("FANZHA_PLATFORM_PASSWORD", PLATFORM_PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut p = DistrictPlatform {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: dir.into(),
            config,
            child: None,
        };
        p.restart();
        p
    }

    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.dir.join("platform.log")).unwrap();
        self.child = Some(
            Command::new(platform_bin())
                .args(["--config", self.config.to_str().unwrap(), "serve"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(self.addr).is_ok()
                && http_get(self.addr, "/healthz").0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the platform did not start: {}",
            std::fs::read_to_string(self.dir.join("platform.log")).unwrap_or_default()
        );
    }

    /// SIGKILL: an outage with nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A logged-in district session: (cookie header, CSRF token).
    pub fn login(&self) -> (String, String) {
        let page = http_get_host(self.addr, "platform", "/login");
        let login_cookie = set_cookie(&page, "fanzha_platform_login").expect("login cookie");
        let csrf = hidden(&page.body, "csrf").expect("csrf");
        let form = format!(
            "name=dora&password={}&csrf={csrf}&next=%2F",
            PLATFORM_PASSWORD.replace(' ', "+")
        );
        let r = self.request(
            "POST",
            "/login",
            &format!("fanzha_platform_login={login_cookie}"),
            Some(&form),
        );
        assert_eq!(r.status, 303, "login: {}", r.body);
        let session = format!(
            "fanzha_platform_session={}",
            set_cookie(&r, "fanzha_platform_session").unwrap()
        );
        let home = self.request("GET", "/", &session, None);
        (
            session.clone(),
            hidden(&home.body, "csrf").expect("csrf of the session"),
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
        form: Option<&str>,
    ) -> HttpResponse {
        let body = form.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: platform\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        http_raw(self.addr, req.as_bytes())
    }

    /// A CSV view as the district sees it (data lines).
    pub fn csv(&self, session: &str, view: &str) -> Vec<String> {
        let r = self.request("GET", &format!("/export/{view}.csv"), session, None);
        assert_eq!(r.status, 200, "{view}: {}", r.body);
        r.body
            .trim_start_matches('\u{feff}')
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()
    }
}

impl Drop for DistrictPlatform {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_cookie(r: &HttpResponse, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.split(';')
                .next()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..at + html[at..].find('"')?].to_string())
}
