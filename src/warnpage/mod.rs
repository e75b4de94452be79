//! The warning page a resident sees when a blocked name leads their browser to the
//! sinkhole: templates, rendering (pure), appeal tokens, and the HTTP server.
//!
//! Templates are plain HTML files with `{{name}}` placeholders; every value is
//! HTML-escaped when it is put in (the Host header and the path are attacker
//! controlled). The built-in templates are compiled in; an operator replaces any of
//! them by putting a file of the same name in `[warnpage] templates`.

pub mod server;
pub mod setup;

use std::collections::HashMap;
use std::path::Path;

use hmac::{KeyInit, Mac};
use serde::Deserialize;

const PAGE: &str = include_str!("templates/page.html");
const NEUTRAL: &str = include_str!("templates/neutral.html");
const THANKS: &str = include_str!("templates/thanks.html");
const CATEGORIES: &str = include_str!("templates/categories.toml");
const KIOSK: &str = include_str!("templates/kiosk.html");

/// Texts of one category.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryText {
    /// Short Chinese tag.
    pub name_zh: String,
    /// Chinese title.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// How the scam works, Chinese.
    pub how_zh: String,
    /// How the scam works, English.
    pub how_en: String,
    /// A short typical case, Chinese (the public display page shows it).
    #[serde(default)]
    pub case_zh: String,
}

/// A template set that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A file cannot be read.
    #[error("cannot read warning-page template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// categories.toml does not parse.
    #[error("warning-page texts {path}: {message}")]
    Categories {
        /// The file.
        path: String,
        /// toml's message.
        message: String,
    },
    /// categories.toml lacks the `[fraud]` fallback.
    #[error("warning-page texts {0} need a [fraud] table (used for categories without their own)")]
    NoFallback(String),
}

/// The page templates and category texts in use.
#[derive(Debug, Clone)]
pub struct Templates {
    page: String,
    neutral: String,
    thanks: String,
    categories: HashMap<String, CategoryText>,
}

impl Templates {
    /// The built-in set.
    pub fn builtin() -> Templates {
        Self::from_parts(
            PAGE.into(),
            NEUTRAL.into(),
            THANKS.into(),
            CATEGORIES,
            "built-in categories.toml",
        )
        .expect("built-in templates are valid")
    }

    fn from_parts(
        page: String,
        neutral: String,
        thanks: String,
        cats: &str,
        origin: &str,
    ) -> Result<Templates, TemplateError> {
        let categories: HashMap<String, CategoryText> =
            toml::from_str(cats).map_err(|e| TemplateError::Categories {
                path: origin.into(),
                message: e.to_string(),
            })?;
        if !categories.contains_key("fraud") {
            return Err(TemplateError::NoFallback(origin.into()));
        }
        Ok(Templates {
            page,
            neutral,
            thanks,
            categories,
        })
    }

    /// The built-in set with any of `page.html`, `neutral.html`, `thanks.html`,
    /// `categories.toml` found in `dir` replacing its own.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let Some(dir) = dir else {
            return Ok(Self::builtin());
        };
        let read = |name: &str, default: &str| -> Result<String, TemplateError> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default.to_string()),
                Err(source) => Err(TemplateError::Read {
                    path: p.display().to_string(),
                    source,
                }),
            }
        };
        let cats = read("categories.toml", CATEGORIES)?;
        Self::from_parts(
            read("page.html", PAGE)?,
            read("neutral.html", NEUTRAL)?,
            read("thanks.html", THANKS)?,
            &cats,
            &dir.join("categories.toml").display().to_string(),
        )
    }

    /// Texts of a category (the `[fraud]` texts for an unknown one).
    pub fn text(&self, category: &str) -> &CategoryText {
        self.categories
            .get(category)
            .or_else(|| self.categories.get("fraud"))
            .expect("checked at load")
    }

    /// Each category's Chinese name, for the alerts.
    pub fn names(&self) -> crate::categories::Names {
        crate::categories::Names::new(
            self.categories
                .iter()
                .map(|(k, t)| (k.clone(), t.name_zh.clone())),
        )
    }

    /// The warning page of a blocked host.
    pub fn page(&self, category: &str, host: &str, path: &str, token: &str) -> String {
        let t = self.text(category);
        render(
            &self.page,
            &[
                ("category", category),
                ("category_zh", &t.name_zh),
                ("title_zh", &t.title_zh),
                ("title_en", &t.title_en),
                ("how_zh", &t.how_zh),
                ("how_en", &t.how_en),
                ("host", host),
                ("path", path),
                ("appeal_token", token),
            ],
        )
    }

    /// The public display page (`/kiosk`): a slide per category (its pattern, a
    /// typical case) and the blocks of the last week, `f`, in the district and in
    /// `street`. Figures only: never a domain or a resident.
    pub fn kiosk(
        &self,
        f: &crate::metrics::week::Figures,
        street: Option<&str>,
        updated: &str,
        turn_seconds: u64,
        nonce: &str,
        setup: Option<&str>,
    ) -> String {
        let mut cats: Vec<(&String, &CategoryText)> = self
            .categories
            .iter()
            .filter(|(k, _)| k.as_str() != "doh")
            .collect();
        // The scams residents meet most first; the generic text last.
        cats.sort_by_key(|(k, _)| (k.as_str() == "fraud", k.as_str() == "phishing", k.as_str()));
        let mut slides = String::new();
        let mut dots = String::new();
        // A place's phone setup (`?place=`): its QR code first.
        let first = usize::from(setup.is_some());
        if let Some(slide) = setup {
            slides.push_str(&format!(
                "<article class=\"slide on setup\">{slide}</article>\n"
            ));
            dots.push_str("<i class=\"on\"></i>");
        }
        for (i, (_, t)) in cats.iter().enumerate() {
            let i = i + first;
            let on = if i == 0 { " on" } else { "" };
            slides.push_str(&format!(
                "<article class=\"slide{on}\"><div class=\"tag\">{}</div><h1>{}</h1><p class=\"how\">{}</p>{}</article>\n",
                escape_html(&t.name_zh),
                escape_html(&t.title_zh),
                escape_html(&t.how_zh),
                if t.case_zh.is_empty() {
                    String::new()
                } else {
                    format!("<p class=\"case\"><b>典型案例</b> {}</p>", escape_html(&t.case_zh))
                }
            ));
            dots.push_str(if i == 0 {
                "<i class=\"on\"></i>"
            } else {
                "<i></i>"
            });
        }
        let by = if street.is_some() {
            &f.street_by_category
        } else {
            &f.district_by_category
        };
        let mut rows: Vec<(&String, &u64)> = by.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let categories: String = rows
            .iter()
            .take(6)
            .map(|(c, n)| {
                format!(
                    "<li><span>{}</span><span>{n} 次</span></li>",
                    escape_html(&self.text(c).name_zh)
                )
            })
            .collect();
        let names: HashMap<&str, &str> = self
            .categories
            .iter()
            .map(|(k, t)| (k.as_str(), t.name_zh.as_str()))
            .collect();
        // Inside <script>: no "</" can end it early.
        let names_json = serde_json::to_string(&names)
            .unwrap_or_else(|_| "{}".into())
            .replace('<', "\\u003c");
        let (district, street_total) = (f.district.to_string(), f.street.to_string());
        let turn = turn_seconds.to_string();
        let page = render(
            KIOSK,
            &[
                ("street", street.unwrap_or("")),
                (
                    "street_hidden",
                    if street.is_some() { "" } else { "hidden" },
                ),
                ("district", &district),
                ("street_total", &street_total),
                ("updated", updated),
                ("turn", &turn),
                ("nonce", nonce),
                ("slides", "@@SLIDES@@"),
                ("dots", "@@DOTS@@"),
                ("categories", "@@CATEGORIES@@"),
                ("names_json", "@@NAMES@@"),
            ],
        );
        page.replacen("@@SLIDES@@", &slides, 1)
            .replacen("@@DOTS@@", &dots, 1)
            .replacen("@@CATEGORIES@@", &categories, 1)
            .replacen("@@NAMES@@", &names_json, 1)
    }

    /// The page for a host that is not blocked.
    pub fn neutral(&self, host: &str, path: &str) -> String {
        render(&self.neutral, &[("host", host), ("path", path)])
    }

    /// The page after an appeal.
    pub fn thanks(&self, host: &str) -> String {
        render(&self.thanks, &[("host", host)])
    }
}

/// Escape text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Replace every `{{name}}` of `tpl` by the escaped value of `name`; unknown names
/// become empty.
pub fn render(tpl: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(tpl.len() + 512);
    let mut rest = tpl;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let key = after[..j].trim();
                if let Some((_, v)) = vars.iter().find(|(k, _)| *k == key) {
                    out.push_str(&escape_html(v));
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The host of a `Host` header, lower-case, without port and trailing dot; `None`
/// when it is not a plausible name (the page then shows it but finds no category).
pub fn host_name(header: &str) -> Option<String> {
    let h = header.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match h.rsplit_once(':') {
            Some((a, p)) if p.bytes().all(|b| b.is_ascii_digit()) => a,
            _ => h,
        }
    };
    crate::blocklist::name::normalize(h).ok()
}

/// CSRF-safe appeal tokens without cookies: an HMAC of the host and the hour, so a
/// form posted from another site (which cannot read our page) has no valid token.
pub struct AppealTokens {
    key: [u8; 32],
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

impl AppealTokens {
    /// Tokens under a fresh key from the kernel's CSPRNG (valid for this process's
    /// lifetime): a key derived from the clock could be guessed, and with it a
    /// token for any host.
    pub fn random() -> AppealTokens {
        let mut key = [0u8; 32];
        if !crate::random::fill(&mut key) {
            // getrandom(2) does not fail once the kernel's pool is ready; if it ever
            // does, std's hasher keys (themselves from the OS) are the next best.
            use std::hash::BuildHasher;
            let seed = std::collections::hash_map::RandomState::new();
            for (i, chunk) in key.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&seed.hash_one(i).to_le_bytes());
            }
        }
        AppealTokens { key }
    }

    fn mac(&self, host: &str, hour: u64) -> String {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key length");
        m.update(host.as_bytes());
        m.update(&hour.to_be_bytes());
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// The token for `host` at unix time `now`.
    pub fn token(&self, host: &str, now: u64) -> String {
        self.mac(host, now / 3600)
    }

    /// Whether `token` was issued for `host` in this hour or the one before.
    pub fn verify(&self, host: &str, token: &str, now: u64) -> bool {
        let h = now / 3600;
        [h, h.saturating_sub(1)].iter().any(|&x| {
            let want = self.mac(host, x);
            want.len() == token.len()
                && want
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_has_its_own_text_and_unknown_falls_back() {
        let t = Templates::builtin();
        for c in [
            "loan",
            "task-scam",
            "investment",
            "impersonation",
            "impersonation-boss",
            "fake-service",
            "phishing",
        ] {
            let page = t.page(c, "x.top", "/", "tok");
            assert!(page.contains(&t.text(c).title_zh), "{c}");
            assert!(page.contains("96110"), "{c}");
            assert_ne!(
                t.text(c).title_zh,
                t.text("fraud").title_zh,
                "{c} has its own text"
            );
        }
        assert_eq!(t.text("no-such").title_zh, t.text("fraud").title_zh);
        assert!(t.page("loan", "x", "/", "t").len() < 30 * 1024);
    }

    #[test]
    fn values_are_escaped() {
        let t = Templates::builtin();
        let page = t.page(
            "loan",
            "<script>alert(1)</script>.evil.top",
            "/\"><img src=x onerror=alert(1)>",
            "t",
        );
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img src=x"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;.evil.top"));
        assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert_eq!(render("a{{x}}b{{y}}c{{", &[("x", "<")]), "a&lt;bc{{");
    }

    #[test]
    fn hosts() {
        assert_eq!(host_name("Evil.TOP:8080").as_deref(), Some("evil.top"));
        assert_eq!(host_name("evil.top.").as_deref(), Some("evil.top"));
        assert_eq!(host_name("<script>").as_deref(), None);
        assert_eq!(host_name("[::1]:80").as_deref(), None);
    }

    #[test]
    fn tokens() {
        let a = AppealTokens::random();
        let t = a.token("evil.top", 7_200_100);
        assert!(a.verify("evil.top", &t, 7_200_100));
        assert!(
            a.verify("evil.top", &t, 7_200_100 + 3600),
            "valid in the next hour"
        );
        assert!(!a.verify("evil.top", &t, 7_200_100 + 7200));
        assert!(!a.verify("other.top", &t, 7_200_100));
        assert!(
            !AppealTokens::random().verify("evil.top", &t, 7_200_100),
            "another key"
        );
    }
}
