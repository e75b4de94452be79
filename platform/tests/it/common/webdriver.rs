//! Headless Chromium driven through ChromeDriver (W3C WebDriver over HTTP on
//! loopback): log in through the form as a person would, open pages, read what the
//! browser rendered.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::server::free_port;

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let a = agent();
    let mut r = match (method, body) {
        ("GET", _) => a.get(url).call(),
        ("DELETE", _) => a.delete(url).call(),
        (_, b) => a
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string()),
    }
    .expect("chromedriver answers");
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if let Some(e) = v["value"]["error"].as_str() {
        panic!("webdriver {method} {url}: {e}: {}", v["value"]["message"]);
    }
    v["value"].clone()
}

fn chromedriver() -> &'static str {
    for c in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if std::path::Path::new(c).exists() {
            return c;
        }
    }
    panic!(
        "ChromeDriver is needed for the browser tests and was not found; run scripts/test.sh, which installs Debian's chromium and chromium-driver"
    )
}

impl Browser {
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        // Finding an element waits up to 10 s for it: a click that navigates returns
        // before the next page is there.
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "timeouts": {"implicit": 10000}, "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=zh-CN",
                     "--window-size=412,1600", "--no-first-run", "--disable-background-networking",
                     format!("--user-data-dir={}", profile.path().display())]}}}});
        let v = call("POST", &format!("{base}/session"), Some(caps));
        let session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/session/{}{rest}", self.base, self.session)
    }

    pub fn open(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": url})));
    }

    pub fn current_url(&self) -> String {
        call("GET", &self.url("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn find(&self, css: &str) -> String {
        let v = call(
            "POST",
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element")
            .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        call(
            "POST",
            &self.url(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        call(
            "POST",
            &self.url(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    /// Run `script` (a function body) in the page; its return value.
    pub fn eval(&self, script: &str) -> Value {
        call(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The page's text once it holds `needle` (a navigation may still be under way),
    /// or as it is after 10 s.
    pub fn wait_text(&self, needle: &str) -> String {
        let t = Instant::now();
        loop {
            let text = self.text();
            if text.contains(needle) || t.elapsed() > Duration::from_secs(10) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn text(&self) -> String {
        self.eval("return document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Log in at `base` as `name` through the form.
    pub fn login(&self, base: &str, name: &str, password: &str) {
        self.open(&format!("{base}/login"));
        self.type_into("#name", name);
        self.type_into("#password", password);
        self.click("#login");
        let t = Instant::now();
        while self.current_url().contains("/login") && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !self.current_url().contains("/login"),
            "{name} could not log in: {}",
            self.text()
        );
    }

    pub fn screenshot(&self, path: &std::path::Path) {
        let b64 = call("GET", &self.url("/screenshot"), None);
        let bytes = base64_decode(b64.as_str().unwrap_or(""));
        std::fs::write(path, bytes).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| {
            acc | (u32::from(val(*c)) << (18 - 6 * i))
        });
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent().delete(&self.url("")).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
