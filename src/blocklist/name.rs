//! Domain-name normalisation shared by the list parser, the CLI and the matcher.
//!
//! A normalised name is lower-case ASCII (IDNA A-labels for Unicode input), has no
//! trailing dot, no empty label, labels of at most 63 octets and at most 253 octets
//! in all. Underscores are accepted: real lists contain them (`pc_apax.art-best.com`).

use std::borrow::Cow;
use std::net::IpAddr;

/// Longest presentation-format name we accept (RFC 1035 §2.3.4 less the root dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a text is not a usable domain name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NameError {
    /// Nothing left after trimming.
    #[error("empty name")]
    Empty,
    /// An IP address, not a name: DNS blocking cannot act on it.
    #[error("an IP address, not a domain name")]
    IpAddress,
    /// Two dots in a row or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than 63 octets.
    #[error("label longer than 63 octets")]
    LabelTooLong,
    /// A name longer than 253 octets.
    #[error("name longer than 253 octets")]
    NameTooLong,
    /// A character that cannot appear in a host name (`*`, `/`, space …).
    #[error("character not allowed in a host name")]
    BadChar,
    /// Unicode input that IDNA (UTS #46) rejects.
    #[error("IDNA conversion failed")]
    Idna,
}

impl NameError {
    /// Stable short reason used in skip counters.
    pub fn reason(self) -> &'static str {
        match self {
            NameError::Empty => "empty-name",
            NameError::IpAddress => "ip-address",
            NameError::EmptyLabel => "empty-label",
            NameError::LabelTooLong => "label-too-long",
            NameError::NameTooLong => "name-too-long",
            NameError::BadChar => "bad-character",
            NameError::Idna => "idna",
        }
    }
}

fn valid_ascii_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Normalise a name as written in a list or typed by an operator.
pub fn normalize(input: &str) -> Result<String, NameError> {
    let s = input.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.parse::<IpAddr>().is_ok() {
        return Err(NameError::IpAddress);
    }
    let ascii: Cow<'_, str> = if s.is_ascii() {
        Cow::Borrowed(s)
    } else {
        match idna::domain_to_ascii(s) {
            Ok(a) => Cow::Owned(a),
            Err(_) => return Err(NameError::Idna),
        }
    };
    check_ascii(&ascii)?;
    let mut out = ascii.into_owned();
    out.make_ascii_lowercase();
    Ok(out)
}

/// Check an ASCII name (no trailing dot) for the rules above, without allocating.
pub fn check_ascii(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong);
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        if !label.bytes().all(valid_ascii_byte) {
            return Err(NameError::BadChar);
        }
    }
    Ok(())
}

/// The key of a normalised name in the compiled map: its labels in reverse order,
/// joined by dots (`a.evil.top` → `top.evil.a`).
pub fn reversed_key(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    reverse_labels(&mut key);
    key
}

/// Turn a name into its [`reversed_key`] in place (or a key back into its name):
/// reverse all bytes, then each label back (`a.evil.top` → `pot.live.a` →
/// `top.evil.a`).
pub fn reverse_labels(name: &mut [u8]) {
    name.reverse();
    for label in name.split_mut(|&b| b == b'.') {
        label.reverse();
    }
}

/// Inverse of [`reversed_key`].
pub fn name_from_key(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    let labels: Vec<&str> = text.split('.').collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases: &[(&str, Result<&str, NameError>)] = &[
            ("Evil.TOP", Ok("evil.top")),
            ("evil.top.", Ok("evil.top")),
            ("  evil.top \t", Ok("evil.top")),
            ("pc_apax.art-best.com", Ok("pc_apax.art-best.com")),
            ("安順極速貸.shop", Ok("xn--49sw73a0r1as3c7ym.shop")),
            (
                "Yahoo國際簽約擔保平臺.top",
                Ok("xn--yahoo-cs3hz24bono4qnj60dt1bs1yml9d.top"),
            ),
            ("xn--fiqs8s", Ok("xn--fiqs8s")),
            ("", Err(NameError::Empty)),
            (".", Err(NameError::Empty)),
            ("1.2.3.4", Err(NameError::IpAddress)),
            ("::1", Err(NameError::IpAddress)),
            ("a..b", Err(NameError::EmptyLabel)),
            (".a.b", Err(NameError::EmptyLabel)),
            ("a*.b", Err(NameError::BadChar)),
            ("a b", Err(NameError::BadChar)),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "input {input:?}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert_eq!(normalize(&long_label), Err(NameError::LabelTooLong));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert!(long_name.len() > 253);
        assert_eq!(normalize(&long_name), Err(NameError::NameTooLong));
    }

    #[test]
    fn keys_round_trip() {
        assert_eq!(reversed_key("a.evil.top"), b"top.evil.a");
        assert_eq!(reversed_key("top"), b"top");
        assert_eq!(name_from_key(b"top.evil.a"), "a.evil.top");
    }
}
