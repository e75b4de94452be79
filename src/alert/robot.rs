//! A digest as the message a place's workers read, and as the request each kind of
//! robot takes; and what the robot's answer means. Pure: the sending is elsewhere.
//!
//! - DingTalk custom robot (钉钉自定义机器人): markdown message; with a secret ("加签"),
//!   `&timestamp=<ms>&sign=<urlencoded base64 of HMAC-SHA256(secret, timestamp "\n"
//!   secret)>` on the URL. It answers HTTP 200 with `{"errcode":0}`, or a non-zero
//!   errcode (a bad signature, a rate limit) also with HTTP 200.
//! - WeCom group robot (企业微信群机器人): markdown message; the key is in the URL.
//!   It answers as DingTalk does.
//! - webhook: the digest as JSON, signed as the reporter signs its batches
//!   (`X-Fanzha-Signature: sha256=<hex HMAC-SHA256 of the body>`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::json;

use super::digest::Digest;
use crate::places::{AlertKind, AlertTarget};

/// Devices a message names at most; it counts the rest.
pub const NAMED_DEVICES: usize = 10;

/// What to do, for a community worker (社区网格员) who gets the message.
pub const WHAT_TO_DO: &str = "请尽快上门或电话联系这些设备的使用人，提醒：不转账、不透露验证码、不下载陌生 App、不开启屏幕共享；如已转账，立即拨打 96110 或 110 报警。建议安装“国家反诈中心”App。";

/// A message's title and markdown text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line (DingTalk shows it in the chat list).
    pub title: String,
    /// The markdown body.
    pub text: String,
}

/// "12月1日 10:20" at `secs` (Unix) in the zone `utc_offset` seconds east of UTC.
pub fn local_time(secs: u64, utc_offset: i32) -> String {
    let t = (secs as i64 + i64::from(utc_offset)).max(0) as u64;
    let s = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
        .to_string();
    // "2026-12-01T10:20:00Z"
    let month: u32 = s[5..7].parse().unwrap_or(0);
    let day: u32 = s[8..10].parse().unwrap_or(0);
    format!("{month}月{day}日 {}", &s[11..16])
}

/// The place as its workers say it: "西兴街道缤纷社区", or the district alone.
fn place_name(d: &Digest) -> String {
    let g = &d.gathered;
    let local = format!("{}{}", g.street, g.community);
    if local.is_empty() {
        g.district.clone()
    } else {
        local
    }
}

/// The message of `d`: the place, the time, how many blocked queries from how many
/// devices, by category (`name_zh` gives a category's Chinese name), the devices as
/// the operator chose to name them (none when labels are empty), and what to do.
/// Never a domain.
pub fn message(d: &Digest, name_zh: &dyn Fn(&str) -> String, utc_offset: i32) -> Message {
    let g = &d.gathered;
    let place = place_name(d);
    let devices = g.devices.len() as u64 + u64::from(g.unnamed_hits > 0);
    let more = if g.unnamed_hits > 0 { "以上" } else { "" };
    let mut text = String::new();
    let _ = writeln!(text, "### 反诈预警｜{place}\n");
    let _ = writeln!(
        text,
        "**地点**：{}\n",
        [&g.district, &g.street, &g.community]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (from, to) = (
        local_time(g.first, utc_offset),
        local_time(g.last, utc_offset),
    );
    let when = if from == to {
        from
    } else if from[..from.find(' ').unwrap_or(0)] == to[..to.find(' ').unwrap_or(0)] {
        format!("{from} 至 {}", &to[to.find(' ').map_or(0, |i| i + 1)..])
    } else {
        format!("{from} 至 {to}")
    };
    let _ = writeln!(text, "**时间**：{when}\n");
    let _ = writeln!(
        text,
        "**情况**：拦截访问诈骗网站 {} 次，涉及 {} 台设备{more}\n",
        g.hits, devices
    );
    let mut cats: Vec<(&String, &u64)> = g.categories.iter().collect();
    cats.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (c, n) in cats {
        let _ = writeln!(text, "- {}：{n} 次", name_zh(c));
    }
    text.push('\n');
    let mut named: Vec<&super::digest::Device> =
        g.devices.values().filter(|d| !d.label.is_empty()).collect();
    if !named.is_empty() {
        named.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.label.cmp(&b.label)));
        let list: Vec<String> = named
            .iter()
            .take(NAMED_DEVICES)
            .map(|d| format!("{}（{} 次）", d.label, d.hits))
            .collect();
        let rest = devices.saturating_sub(list.len() as u64);
        let tail = if rest > 0 {
            format!(" 等，另有 {rest} 台")
        } else {
            String::new()
        };
        let _ = writeln!(text, "**设备**：{}{tail}\n", list.join("、"));
    }
    let _ = writeln!(text, "**处置建议**：{WHAT_TO_DO}");
    Message {
        title: format!("反诈预警 {place} {} 次", g.hits),
        text,
    }
}

/// An HTTP POST to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where (with DingTalk's signature in the query).
    pub url: String,
    /// Headers.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// DingTalk's signature of `timestamp_ms` under `secret`: base64 of
/// HMAC-SHA256(secret, "<timestamp>\n<secret>"), URL-encoded.
pub fn dingtalk_sign(secret: &str, timestamp_ms: u64) -> String {
    let mut m =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key");
    m.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The request that delivers `d` to `target` at `now_ms` (Unix milliseconds: DingTalk
/// refuses a signature more than an hour old, so it is made at each try).
pub fn request(
    target: &AlertTarget,
    d: &Digest,
    msg: &Message,
    appliance: &str,
    now_ms: u64,
) -> Request {
    let json = vec![(
        "Content-Type",
        "application/json; charset=utf-8".to_string(),
    )];
    match target.kind {
        AlertKind::DingTalk => {
            let mut url = target.url.clone();
            if !target.secret.is_empty() {
                let sep = if url.contains('?') { '&' } else { '?' };
                let sign = dingtalk_sign(&target.secret, now_ms);
                let _ = write!(url, "{sep}timestamp={now_ms}&sign={sign}");
            }
            let body = json!({
                "msgtype": "markdown",
                "markdown": { "title": msg.title, "text": msg.text },
            });
            Request {
                url,
                headers: json,
                body: body.to_string().into_bytes(),
            }
        }
        AlertKind::WeCom => {
            let body = json!({
                "msgtype": "markdown",
                "markdown": { "content": msg.text },
            });
            Request {
                url: target.url.clone(),
                headers: json,
                body: body.to_string().into_bytes(),
            }
        }
        AlertKind::Webhook => {
            let g = &d.gathered;
            let time = |s: u64| {
                humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                    .to_string()
            };
            let devices: Vec<serde_json::Value> = g
                .devices
                .values()
                .filter(|d| !d.label.is_empty())
                .map(|d| json!({ "device": d.label, "hits": d.hits }))
                .collect();
            let body = json!({
                "kind": "alert",
                "id": d.id,
                "appliance": appliance,
                "place": { "district": g.district, "street": g.street, "community": g.community },
                "from": time(g.first),
                "to": time(g.last),
                "hits": g.hits,
                "devices": g.devices.len() as u64 + u64::from(g.unnamed_hits > 0),
                "named_devices": devices,
                "categories": g.categories,
                "title": msg.title,
                "text": msg.text,
            })
            .to_string()
            .into_bytes();
            let mut headers = json;
            headers.push((
                "X-Fanzha-Signature",
                crate::outbox::signature(target.secret.as_bytes(), &body),
            ));
            headers.push(("X-Fanzha-Appliance", appliance.to_string()));
            headers.push(("Idempotency-Key", d.id.clone()));
            Request {
                url: target.url.clone(),
                headers,
                body,
            }
        }
    }
}

/// What a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Taken.
    Sent,
    /// Busy or down (5xx, 408, 429, a robot's rate limit, no answer): try again.
    Retry(String),
    /// Refused (a bad signature or key, a wrong URL): a configuration error; tried
    /// again slowly, so that fixing the config delivers it.
    Refused(String),
}

/// DingTalk's and WeCom's error codes for "too many messages": wait and retry.
const RATE_LIMITED: &[i64] = &[130101, 45009, 45033];

/// What `status` and `body` from a `kind` robot mean.
pub fn judge(kind: AlertKind, status: u16, body: &[u8]) -> Delivery {
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => return Delivery::Retry(format!("HTTP {status}")),
        _ => return Delivery::Refused(format!("HTTP {status}")),
    }
    if kind == AlertKind::Webhook {
        return Delivery::Sent;
    }
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // A robot that answers 2xx without its JSON: taken, as far as can be told.
        Err(_) => return Delivery::Sent,
    };
    match v.get("errcode").and_then(|c| c.as_i64()) {
        None | Some(0) => Delivery::Sent,
        Some(code) => {
            let msg = v.get("errmsg").and_then(|m| m.as_str()).unwrap_or("");
            let why = format!("errcode {code}: {msg}");
            if RATE_LIMITED.contains(&code) {
                Delivery::Retry(why)
            } else {
                Delivery::Refused(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest::{Book, Digest};
    use super::*;
    use crate::places::Place;

    fn digest() -> Digest {
        let mut b = Book::default();
        let p = Place {
            district: "滨江区".into(),
            street: "西兴街道".into(),
            community: "缤纷社区".into(),
            ..Place::default()
        };
        // 2025-12-01 02:20:00 UTC = 10:20 in Beijing.
        let t = 1_764_555_600;
        for (dev, cat, dt) in [
            ("a", "loan", 0),
            ("a", "loan", 60),
            ("b", "investment", 300),
        ] {
            b.add(&p, (dev, &format!("dev-{dev}")), cat, t + dt);
        }
        b.take(&p.key(), "01ID".into(), t + 600).unwrap()
    }

    fn zh(c: &str) -> String {
        match c {
            "loan" => "网络贷款".into(),
            "investment" => "杀猪盘".into(),
            _ => "诈骗网站".into(),
        }
    }

    #[test]
    fn the_message_says_where_when_how_many_and_what_to_do_but_never_a_domain() {
        let m = message(&digest(), &zh, 8 * 3600);
        assert_eq!(m.title, "反诈预警 西兴街道缤纷社区 3 次");
        for want in [
            "滨江区 西兴街道 缤纷社区",
            "12月1日 10:20 至 10:25",
            "拦截访问诈骗网站 3 次，涉及 2 台设备",
            "- 网络贷款：2 次",
            "- 杀猪盘：1 次",
            "dev-a（2 次）、dev-b（1 次）",
            "96110",
        ] {
            assert!(m.text.contains(want), "{want:?} not in\n{}", m.text);
        }
        // Devices named "none": counted, not listed.
        let mut d = digest();
        for dev in d.gathered.devices.values_mut() {
            dev.label.clear();
        }
        let m = message(&d, &zh, 8 * 3600);
        assert!(m.text.contains("涉及 2 台设备") && !m.text.contains("**设备**"));
    }

    #[test]
    fn local_times() {
        assert_eq!(local_time(1_764_555_600, 8 * 3600), "12月1日 10:20");
        assert_eq!(local_time(1_764_555_600, 0), "12月1日 02:20");
        assert_eq!(local_time(1_764_518_400 - 1, 8 * 3600), "11月30日 23:59");
    }

    #[test]
    fn dingtalk_signature_as_its_documentation_computes_it() {
        // Computed with Python's hmac, base64 and urllib.parse.quote.
        assert_eq!(
            dingtalk_sign("SEC0123456789abcdef", 1_764_561_600_000),
            "4%2F3%2Fk%2By2aZzBB7ghTRckH3sINhKyAHvZ497%2BcxnCYnE%3D"
        );
        let t = AlertTarget {
            kind: AlertKind::DingTalk,
            url: "https://oapi.dingtalk.com/robot/send?access_token=T".into(),
            secret: "SEC0123456789abcdef".into(),
        };
        let d = digest();
        let r = request(&t, &d, &message(&d, &zh, 0), "a", 1_764_561_600_000);
        assert_eq!(
            r.url,
            "https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1764561600000&sign=4%2F3%2Fk%2By2aZzBB7ghTRckH3sINhKyAHvZ497%2BcxnCYnE%3D"
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["msgtype"], "markdown");
        assert!(v["markdown"]["text"].as_str().unwrap().contains("缤纷社区"));
    }

    #[test]
    fn a_webhook_is_signed_as_the_reports_are() {
        let t = AlertTarget {
            kind: AlertKind::Webhook,
            url: "http://127.0.0.1:1/alerts".into(),
            secret: "webhook-secret-0123".into(),
        };
        let d = digest();
        let r = request(&t, &d, &message(&d, &zh, 0), "binjiang-01", 0);
        let sig = r
            .headers
            .iter()
            .find(|(k, _)| *k == "X-Fanzha-Signature")
            .unwrap();
        assert_eq!(
            sig.1,
            crate::outbox::signature(b"webhook-secret-0123", &r.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["hits"].as_u64(), v["devices"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(v["place"]["community"], "缤纷社区");
        assert_eq!(v["categories"]["loan"], 2);
    }

    #[test]
    fn robot_answers() {
        use AlertKind::*;
        assert_eq!(
            judge(DingTalk, 200, br#"{"errcode":0,"errmsg":"ok"}"#),
            Delivery::Sent
        );
        assert!(matches!(
            judge(DingTalk, 200, br#"{"errcode":310000,"errmsg":"sign not match"}"#),
            Delivery::Refused(w) if w.contains("310000")
        ));
        assert!(matches!(
            judge(WeCom, 200, br#"{"errcode":45009}"#),
            Delivery::Retry(_)
        ));
        assert!(matches!(judge(Webhook, 503, b""), Delivery::Retry(_)));
        assert!(matches!(judge(Webhook, 404, b""), Delivery::Refused(_)));
        assert_eq!(judge(Webhook, 204, b""), Delivery::Sent);
    }
}
