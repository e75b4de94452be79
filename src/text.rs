//! Small text helpers shared by the list parser and the warning page.

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `url` with its secrets hidden, for logs, `Debug` and `dump-config`: every query
/// value (a WeCom robot's `key=`, a DingTalk robot's `access_token=`) and the
/// password of `user:password@`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, host) = match rest.split_once('@') {
                Some((a, h)) if !a.contains('/') => (Some(a), h),
                _ => (None, rest),
            };
            match auth.map(|a| a.split_once(':').map_or(a, |(u, _)| u)) {
                Some(user) => format!("{scheme}://{user}:(hidden)@{host}"),
                None => format!("{scheme}://{host}"),
            }
        }
        None => base.to_string(),
    };
    if let Some(q) = query {
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !v.is_empty() => format!("{k}=(hidden)"),
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn robot_tokens_and_passwords_are_hidden() {
        assert_eq!(
            redact_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=(hidden)"
        );
        assert_eq!(
            redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc&x=1"),
            "https://oapi.dingtalk.com/robot/send?access_token=(hidden)&x=(hidden)"
        );
        assert_eq!(
            redact_url("https://ops:s3cret@hooks.example/alert"),
            "https://ops:(hidden)@hooks.example/alert"
        );
        assert_eq!(
            redact_url("https://hooks.example/a"),
            "https://hooks.example/a"
        );
    }
}
