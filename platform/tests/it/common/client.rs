//! HTTP on loopback: plain requests, signed batches, and a session that logs in
//! through the form and keeps its cookies as a browser would.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;

use fanzha::report::event::{AppealInfo, ClientInfo, Event, MatchInfo, PlaceOut, QueryInfo};

use super::server::{PASSWORD, SECRET};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// A response: status, headers (lower-case names), body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("an HTTP answer");
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    Reply {
        status: r.status().as_u16(),
        headers,
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET without a session.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), ureq::Error> {
    let mut r = agent().get(&format!("http://{addr}{path}")).call()?;
    Ok((
        r.status().as_u16(),
        r.body_mut().read_to_string().unwrap_or_default(),
    ))
}

/// A hit event as an appliance makes it.
pub fn hit(
    id: &str,
    appliance: &str,
    ms: u64,
    device: &str,
    place: (&str, &str),
    name: &str,
    category: &str,
) -> Event {
    Event {
        id: id.into(),
        kind: "hit".into(),
        time: fanzha::report::event::rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        ),
        appliance: appliance.into(),
        client: ClientInfo {
            ip: device.into(),
            place: PlaceOut {
                district: "滨江区".into(),
                street: place.0.into(),
                community: place.1.into(),
            },
        },
        query: Some(QueryInfo {
            name: name.into(),
            qtype: "A".into(),
        }),
        matched: Some(MatchInfo {
            rule: name.split_once('.').map_or(name, |(_, r)| r).into(),
            list: format!("{category}.txt"),
            category: category.into(),
            note: Some(format!("案件 {category}-17")),
        }),
        action: "sinkhole".into(),
        count: 1,
        appeal: None,
        via: None,
    }
}

/// An appeal event.
pub fn appeal(id: &str, appliance: &str, ms: u64, host: &str, reason: &str) -> Event {
    let mut e = hit(
        id,
        appliance,
        ms,
        "10.1.2.3",
        ("西兴街道", "缤纷社区"),
        host,
        "loan",
    );
    e.kind = "appeal".into();
    e.action = "appeal".into();
    e.query = None;
    e.appeal = Some(AppealInfo {
        host: host.into(),
        reason: reason.into(),
    });
    e
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// POST a batch as `appliance` signed with `secret`; the answer.
pub fn post_raw(addr: SocketAddr, appliance: &str, secret: &str, key: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(&format!("http://{addr}/v1/events"))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .header(
                "X-Fanzha-Signature",
                fanzha::outbox::signature(secret.as_bytes(), body),
            )
            .header("X-Fanzha-Appliance", appliance)
            .header("Idempotency-Key", key)
            .send(body),
    )
}

/// POST `events` as `appliance` (signed with SECRET).
pub fn post_events(addr: SocketAddr, appliance: &str, key: &str, events: &[Event]) -> Reply {
    post_raw(
        addr,
        appliance,
        SECRET,
        key,
        &gzip(&serde_json::to_vec(events).unwrap()),
    )
}

/// A logged-in person.
pub struct Session {
    pub addr: SocketAddr,
    pub cookies: HashMap<String, String>,
    pub csrf: String,
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_string())
}

impl Session {
    fn keep(&mut self, r: &Reply) {
        for (k, v) in &r.headers {
            if k == "set-cookie" {
                let first = v.split(';').next().unwrap_or("");
                if let Some((n, val)) = first.split_once('=') {
                    if val.is_empty() {
                        self.cookies.remove(n);
                    } else {
                        self.cookies.insert(n.to_string(), val.to_string());
                    }
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Log in as `name` with PASSWORD; the login's answer.
    pub fn login_as(addr: SocketAddr, name: &str, password: &str) -> (Session, Reply) {
        let mut s = Session {
            addr,
            cookies: HashMap::new(),
            csrf: String::new(),
        };
        let page = s.get("/login");
        assert_eq!(page.status, 200);
        let csrf = hidden(&page.body, "csrf").expect("the login form's csrf");
        let r = s.post_form(
            "/login",
            &[
                ("name", name),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/"),
            ],
        );
        if r.status == 303 {
            let home = s.get("/");
            s.csrf = hidden(&home.body, "csrf").unwrap_or_default();
        }
        (s, r)
    }

    /// Log in, and expect it to work.
    pub fn login(addr: SocketAddr, name: &str) -> Session {
        let (s, r) = Session::login_as(addr, name, PASSWORD);
        assert_eq!(r.status, 303, "login {name}: {}", r.body);
        s
    }

    pub fn get(&mut self, path: &str) -> Reply {
        let r = reply(
            agent()
                .get(&format!("http://{}{path}", self.addr))
                .header("Cookie", self.cookie_header())
                .call(),
        );
        self.keep(&r);
        r
    }

    pub fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let r = reply(
            agent()
                .post(&format!("http://{}{path}", self.addr))
                .header("Cookie", self.cookie_header())
                .send_form(form.iter().copied()),
        );
        self.keep(&r);
        r
    }
}
