//! A district platform on loopback: takes signed, gzipped hit batches as fanzha
//! posts them, checks the signature, and records what the events carry.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "test-secret-0123456789";

/// A platform: answers `status` (0 = hang, 1 = garbage), records every event name it accepts.
pub struct TestPlatform {
    pub addr: SocketAddr,
    pub names: Arc<Mutex<HashSet<String>>>,
    pub ids: Arc<Mutex<HashSet<String>>>,
    /// Query name → the street its event carried.
    pub streets: Arc<Mutex<HashMap<String, String>>>,
    /// The `client.ip` fields seen.
    pub clients: Arc<Mutex<HashSet<String>>>,
    /// Query name → the action its event carried.
    pub actions: Arc<Mutex<HashMap<String, String>>>,
    /// Query name → its last event, whole.
    pub events: Arc<Mutex<HashMap<String, serde_json::Value>>>,
    pub bad_signatures: Arc<AtomicU64>,
    pub posts: Arc<AtomicU64>,
    pub status: Arc<AtomicU16>,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl TestPlatform {
    pub fn start(addr: &str) -> TestPlatform {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let (names, ids) = (
            Arc::new(Mutex::new(HashSet::new())),
            Arc::new(Mutex::new(HashSet::new())),
        );
        let streets = Arc::new(Mutex::new(HashMap::new()));
        let clients = Arc::new(Mutex::new(HashSet::new()));
        let actions = Arc::new(Mutex::new(HashMap::new()));
        let events = Arc::new(Mutex::new(HashMap::new()));
        let bad = Arc::new(AtomicU64::new(0));
        let posts = Arc::new(AtomicU64::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (names, ids, streets, clients, actions, bad, posts, status, stop) = (
                names.clone(),
                ids.clone(),
                streets.clone(),
                clients.clone(),
                (actions.clone(), events.clone()),
                bad.clone(),
                posts.clone(),
                status.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (s, _) = match l.accept() {
                        Ok(v) => v,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    handle(
                        s,
                        &names,
                        &ids,
                        (&streets, &clients, &actions.0, &actions.1),
                        &bad,
                        &posts,
                        &status,
                    );
                }
            })
        };
        TestPlatform {
            addr,
            names,
            ids,
            streets,
            clients,
            actions,
            events,
            bad_signatures: bad,
            posts,
            status,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> SocketAddr {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.addr
    }

    pub fn wait_names(&self, want: usize, timeout: Duration) -> usize {
        let t = Instant::now();
        loop {
            let n = self.names.lock().unwrap().len();
            if n >= want || t.elapsed() > timeout {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Query name → a field of its event.
type ByName = Mutex<HashMap<String, String>>;
/// Query name → its event.
type Whole = Mutex<HashMap<String, serde_json::Value>>;

fn handle(
    s: TcpStream,
    names: &Mutex<HashSet<String>>,
    ids: &Mutex<HashSet<String>>,
    (streets, clients, actions, whole): (&ByName, &Mutex<HashSet<String>>, &ByName, &Whole),
    bad: &AtomicU64,
    posts: &AtomicU64,
    status: &AtomicU16,
) {
    let mut r = BufReader::new(s);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line != "\r\n" {
            headers.push(line.trim_end().to_string());
            continue;
        }
        // Playing an HTTP proxy too: a CONNECT opens a tunnel, here to itself, and
        // the request comes through it.
        if headers.first().is_some_and(|h| h.starts_with("CONNECT ")) {
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            headers.clear();
            continue;
        }
        break;
    }
    let get = |k: &str| {
        headers.iter().find_map(|h| {
            h.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let len: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    posts.fetch_add(1, Ordering::Relaxed);
    let code = status.load(Ordering::Relaxed);
    let mut s = r.into_inner();
    if code == 0 {
        std::thread::sleep(Duration::from_secs(30)); // hang
        return;
    }
    if code == 1 {
        let _ = s.write_all(b"\x00\x01garbage, not HTTP\r\n\r\n"); // garbage
        return;
    }
    if code == 200 {
        if get("x-fanzha-signature").as_deref()
            != Some(fanzha::outbox::signature(SECRET.as_bytes(), &body).as_str())
            || get("x-fanzha-appliance").as_deref() != Some("test-appliance")
            || get("content-encoding").as_deref() != Some("gzip")
        {
            bad.fetch_add(1, Ordering::Relaxed);
            let _ = s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
            return;
        }
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut json)
            .unwrap();
        let events: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
        let mut n = names.lock().unwrap();
        let mut i = ids.lock().unwrap();
        for e in events {
            streets.lock().unwrap().insert(
                e["query"]["name"].as_str().unwrap_or("").to_string(),
                e["client"]["place"]["street"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
            clients
                .lock()
                .unwrap()
                .insert(e["client"]["ip"].as_str().unwrap_or("").to_string());
            actions.lock().unwrap().insert(
                e["query"]["name"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
            );
            n.insert(e["query"]["name"].as_str().unwrap_or("").to_string());
            i.insert(e["id"].as_str().unwrap().to_string());
            let name = e["query"]["name"].as_str().unwrap_or("").to_string();
            whole.lock().unwrap().insert(name, e);
        }
    }
    let _ = write!(
        s,
        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
