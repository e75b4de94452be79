//! The pages' HTML: one layout that reads well on a phone, tables, and charts drawn
//! as inline SVG on the server (no script, no external file).

use fanzha::warnpage::escape_html;

use crate::cases::day_of;
use crate::store::people::Account;

/// Escape text for HTML.
pub(super) fn esc(s: &str) -> String {
    escape_html(s)
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC','PingFang SC',sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#b3261e;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:.6em;align-items:center}
header a{color:#fff}header form{margin-left:auto}main{padding:1em;max-width:1100px;margin:auto}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}table{border-collapse:collapse;width:100%;background:#fff;font-size:.95em}
td,th{border-bottom:1px solid #ddd;padding:.45em;text-align:left;vertical-align:top}th{background:#eee}
.num{text-align:right;font-variant-numeric:tabular-nums}.card{background:#fff;padding:1em;margin:.8em 0;border-radius:6px}
.warn{background:#fff3cd;padding:.8em;border-left:4px solid #b3261e}button,select,input,textarea{font-size:1em;padding:.4em}
textarea{width:100%}.open{color:#b3261e;font-weight:bold}.muted{color:#666;font-size:.9em}
@media(max-width:600px){td,th{padding:.35em;font-size:.9em}.wide{display:none}}";

/// A bare page (errors).
pub(super) fn bare(text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>反诈平台</title><style>{STYLE}</style></head><body><main><p>{}</p><p><a href=\"/\">返回 Back</a></p></main></body></html>",
        esc(text)
    )
}

/// A page of the platform for account `a`, whose forms carry `csrf`.
pub(super) fn page(district: &str, (a, csrf): (&Account, &str), title: &str, body: &str) -> String {
    let place = if a.scope.place.is_empty() {
        district.to_string()
    } else {
        a.scope.place.clone()
    };
    let district_links = if a.scope.is_district() {
        "<a href=\"/appeals\">申诉 Appeals</a><a href=\"/audit\">审计 Audit</a>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} · 反诈平台</title><style>{STYLE}</style></head><body>
<header><strong>反诈平台 · {place}</strong><a href=\"/\">总览 Overview</a><a href=\"/cases\">待跟进 Queue</a>{district_links}
<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><span class=\"muted\" style=\"color:#fff\">{user} ({role}) </span><button>退出 Log out</button></form></header>
<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        place = esc(&place),
        csrf = esc(csrf),
        user = esc(&a.name),
        role = a.scope.role.label(),
    )
}

/// The login form.
pub(super) fn login_form(district: &str, csrf: &str, next: &str, message: &str) -> String {
    let msg = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"warn\" id=\"message\">{}</p>", esc(message))
    };
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>登录 · 反诈平台</title><style>{STYLE}</style></head><body>
<header><strong>反诈平台 · {d}</strong></header><main><h1>登录 Log in</h1>{msg}
<form method=\"post\" action=\"/login\" class=\"card\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\"><input type=\"hidden\" name=\"next\" value=\"{n}\">
<p><label>用户名 Name<br><input name=\"name\" id=\"name\" autocomplete=\"username\" required></label></p>
<p><label>密码 Password<br><input name=\"password\" id=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>
<p><button id=\"login\">登录 Log in</button></p></form></main></body></html>",
        d = esc(district),
        c = esc(csrf),
        n = esc(next),
    )
}

/// `2026-11-28 16:00` in the district's time.
pub(super) fn time(ms: i64, offset_minutes: i32) -> String {
    if ms <= 0 {
        return "—".into();
    }
    let local = ms + i64::from(offset_minutes) * 60_000;
    let min = local.div_euclid(60_000).rem_euclid(24 * 60);
    format!(
        "{} {:02}:{:02}",
        day_of(ms, offset_minutes),
        min / 60,
        min % 60
    )
}

/// A table: headers and rows of already-escaped cells (`num:` prefix right-aligns).
pub(super) fn table(id: &str, heads: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table id=\"{id}\"><thead><tr>");
    for h in heads {
        s.push_str(&format!("<th>{h}</th>"));
    }
    s.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        s.push_str(&format!(
            "<tr><td colspan=\"{}\" class=\"muted\">无 None</td></tr>",
            heads.len()
        ));
    }
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            match c.strip_prefix("num:") {
                Some(n) => s.push_str(&format!("<td class=\"num\">{n}</td>")),
                None => s.push_str(&format!("<td>{c}</td>")),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

const COLOURS: [&str; 8] = [
    "#b3261e", "#1e63b3", "#2e7d32", "#f09000", "#6a1b9a", "#00838f", "#795548", "#546e7a",
];

/// Horizontal bars, one per (label, value), labelled with the value.
pub(super) fn bars(id: &str, rows: &[(String, i64)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = 26 * rows.len().max(1) + 4;
    let mut s = format!(
        "<svg id=\"{id}\" role=\"img\" viewBox=\"0 0 600 {h}\" width=\"100%\" style=\"max-width:600px;background:#fff\">"
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 4 + i * 26;
        let w = (*v as f64 / max as f64 * 380.0).round() as i64;
        s.push_str(&format!(
            "<text x=\"4\" y=\"{ty}\" font-size=\"13\">{l}</text><rect x=\"150\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"{c}\"/><text x=\"{tx}\" y=\"{ty}\" font-size=\"13\">{v}</text>",
            ty = y + 14,
            l = esc(label),
            c = COLOURS[0],
            tx = 154 + w,
        ));
    }
    s.push_str("</svg>");
    s
}

/// Stacked columns of hits per day by category, with a legend.
pub(super) fn trend(
    id: &str,
    daily: &[(String, String, i64)],
    names: &fanzha::categories::Names,
) -> String {
    let mut days: Vec<&str> = daily.iter().map(|d| d.0.as_str()).collect();
    days.dedup();
    let mut cats: Vec<&str> = daily.iter().map(|d| d.1.as_str()).collect();
    cats.sort_unstable();
    cats.dedup();
    let total = |day: &str| {
        daily
            .iter()
            .filter(|d| d.0 == day)
            .map(|d| d.2)
            .sum::<i64>()
    };
    let max = days.iter().map(|d| total(d)).max().unwrap_or(0).max(1);
    let n = days.len().max(1);
    let bw = (560.0 / n as f64).min(40.0);
    let mut s = format!(
        "<svg id=\"{id}\" role=\"img\" viewBox=\"0 0 600 290\" width=\"100%\" style=\"max-width:600px;background:#fff\">"
    );
    for (i, day) in days.iter().enumerate() {
        let x = 30.0 + i as f64 * bw;
        let mut y = 220.0;
        for (ci, cat) in cats.iter().enumerate() {
            let v = daily
                .iter()
                .find(|d| d.0 == *day && d.1 == *cat)
                .map_or(0, |d| d.2);
            let h = v as f64 / max as f64 * 200.0;
            y -= h;
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\"><title>{day} {cat}: {v}</title></rect>",
                w = (bw - 2.0).max(1.0),
                c = COLOURS[ci % COLOURS.len()],
                cat = esc(names.zh(cat)),
            ));
        }
        if i == 0 || i + 1 == days.len() {
            s.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"238\" font-size=\"11\">{}</text>",
                &day[5..]
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"2\" y=\"24\" font-size=\"11\">{max}</text>"
    ));
    for (ci, cat) in cats.iter().enumerate() {
        let x = 30 + (ci % 4) * 140;
        let y = 250 + (ci / 4) * 12;
        s.push_str(&format!(
            "<rect x=\"{x}\" y=\"{ry}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{tx}\" y=\"{y}\" font-size=\"11\">{l}</text>",
            ry = y - 9,
            c = COLOURS[ci % COLOURS.len()],
            tx = x + 14,
            l = esc(names.zh(cat)),
        ));
    }
    s.push_str("</svg>");
    s
}
