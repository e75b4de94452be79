use super::*;

fn parse_all(lines: &[&str]) -> Vec<Item> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for l in lines {
        p.parse_line(l, &mut |i| out.push(i));
    }
    out
}

fn one(line: &str) -> Vec<Item> {
    parse_all(&[line])
}

fn rule(name: &str, scope: Scope, polarity: Polarity, explicit: bool) -> Item {
    Item::Rule(Rule {
        name: name.into(),
        scope,
        polarity,
        explicit_scope: explicit,
        note: None,
    })
}

fn path(host: &str, subtree: bool, p: &str, how: PathMatch, schemes: Schemes) -> Item {
    Item::Path(PathItem {
        host: host.into(),
        subtree,
        path: p.into(),
        how,
        schemes,
        note: None,
    })
}

/// An RPZ rule with the action its note carries.
fn rpz(name: &str, scope: Scope, action: &str) -> Item {
    Item::Rule(Rule {
        name: name.into(),
        scope,
        polarity: Block,
        explicit_scope: true,
        note: Some(format!("rpz={action}")),
    })
}

use Polarity::{Allow, Block};
use Scope::{Below, Exact, Subtree};

#[test]
fn formats() {
    let cases: Vec<(&str, Vec<Item>)> = vec![
        ("evil.top", vec![rule("evil.top", Subtree, Block, false)]),
        ("Evil.TOP.", vec![rule("evil.top", Subtree, Block, false)]),
        (
            "\u{feff}evil.top\r",
            vec![rule("evil.top", Subtree, Block, false)],
        ),
        ("*.evil.top", vec![rule("evil.top", Below, Block, true)]),
        (
            "0.0.0.0 evil.top",
            vec![rule("evil.top", Subtree, Block, false)],
        ),
        (
            "127.0.0.1\ta.top  b.top",
            vec![
                rule("a.top", Subtree, Block, false),
                rule("b.top", Subtree, Block, false),
            ],
        ),
        ("127.0.0.1 localhost", vec![Item::Skip(Skip::HostsLocal)]),
        ("fe80::1%lo0 localhost", vec![Item::Skip(Skip::HostsLocal)]),
        (
            "::1 ip6-localhost ip6-loopback",
            vec![Item::Skip(Skip::HostsLocal), Item::Skip(Skip::HostsLocal)],
        ),
        ("||evil.top^", vec![rule("evil.top", Subtree, Block, true)]),
        ("||evil.top^|", vec![rule("evil.top", Subtree, Block, true)]),
        ("@@||ok.top^", vec![rule("ok.top", Subtree, Allow, true)]),
        (
            "||evil.top^$important",
            vec![
                Item::Warn(Warn::ModifierIgnored),
                rule("evil.top", Subtree, Block, true),
            ],
        ),
        (
            "||evil.top^$all",
            vec![
                Item::Warn(Warn::ModifierIgnored),
                rule("evil.top", Subtree, Block, true),
            ],
        ),
        (
            "||evil.top^$dnstype=A",
            vec![Item::Skip(Skip::AdblockModifier)],
        ),
        ("||ac*.786ip.com^", vec![Item::Skip(Skip::AdblockPattern)]),
        ("||admob.*^", vec![Item::Skip(Skip::AdblockPattern)]),
        (
            "||avito.avito.avito.",
            vec![Item::Skip(Skip::AdblockPattern)],
        ),
        (".com-id*.info^", vec![Item::Skip(Skip::AdblockPattern)]),
        (
            "/^(\\S+\\.)?tongji\\./$dnstype=A",
            vec![Item::Skip(Skip::Regex)],
        ),
        ("/ads[0-9]+\\.example/", vec![Item::Skip(Skip::Regex)]),
        (
            "https://evil.top/path?q=1",
            vec![path(
                "evil.top",
                false,
                "/path?q=1",
                PathMatch::Exact,
                Schemes::Https,
            )],
        ),
        (
            "HTTP://Sites.Example/shop-1/*",
            vec![path(
                "sites.example",
                false,
                "/shop-1/",
                PathMatch::Prefix,
                Schemes::Http,
            )],
        ),
        (
            "*://*.blog.example/scam/x",
            vec![path(
                "blog.example",
                true,
                "/scam/x",
                PathMatch::Exact,
                Schemes::Both,
            )],
        ),
        (
            "http://h.example/a*b",
            vec![Item::Skip(Skip::AdblockPattern)],
        ),
        (
            "||sites.example/shop-2/pay^",
            vec![path(
                "sites.example",
                true,
                "/shop-2/pay",
                PathMatch::Separator,
                Schemes::Both,
            )],
        ),
        (
            "||sites.example/kit|",
            vec![path(
                "sites.example",
                true,
                "/kit",
                PathMatch::Exact,
                Schemes::Both,
            )],
        ),
        (
            "||sites.example/kit",
            vec![path(
                "sites.example",
                true,
                "/kit",
                PathMatch::Prefix,
                Schemes::Both,
            )],
        ),
        (
            "||sites.example/kit*^",
            vec![Item::Skip(Skip::AdblockPattern)],
        ),
        (
            "@@||sites.example/ok^",
            vec![Item::Skip(Skip::AdblockPattern)],
        ),
        (
            "http://user@evil.top:8080/",
            vec![rule("evil.top", Subtree, Block, false)],
        ),
        (
            "539lucky.com:15888",
            vec![rule("539lucky.com", Subtree, Block, false)],
        ),
        (
            "ncryp.itokdxa.cn/mmpnd?p=1",
            vec![path(
                "ncryp.itokdxa.cn",
                false,
                "/mmpnd?p=1",
                PathMatch::Exact,
                Schemes::Both,
            )],
        ),
        (
            "*://*.evil.top/*",
            vec![rule("evil.top", Subtree, Block, true)],
        ),
        (
            "server=/evil.top/",
            vec![rule("evil.top", Subtree, Block, true)],
        ),
        (
            "address=/evil.top/0.0.0.0",
            vec![rule("evil.top", Subtree, Block, true)],
        ),
        (
            "server=/corp.example/10.0.0.1",
            vec![Item::Skip(Skip::DnsmasqForward)],
        ),
        ("evil.top CNAME .", vec![rpz("evil.top", Exact, "nxdomain")]),
        (
            "*.evil.top CNAME .",
            vec![rpz("evil.top", Below, "nxdomain")],
        ),
        (
            "evil.top 300 IN CNAME *.",
            vec![rpz("evil.top", Exact, "nodata")],
        ),
        (
            "evil.top CNAME rpz-drop.",
            vec![rpz("evil.top", Exact, "drop")],
        ),
        (
            "evil.top CNAME rpz-tcp-only.",
            vec![rpz("evil.top", Exact, "tcp-only")],
        ),
        (
            "evil.top CNAME walled.example.",
            vec![rpz("evil.top", Exact, "data CNAME walled.example")],
        ),
        (
            "evil.top AAAA 2001:db8::1",
            vec![rpz("evil.top", Exact, "data AAAA 2001:db8::1")],
        ),
        (
            "evil.top TXT \"fraud\" \"see 96110\"",
            vec![rpz("evil.top", Exact, "data TXT \"fraud\" \"see 96110\"")],
        ),
        (
            "evil.top A not-an-address",
            vec![Item::Skip(Skip::RpzUnsupported)],
        ),
        (
            "ok.top CNAME rpz-passthru.",
            vec![rule("ok.top", Exact, Allow, true)],
        ),
        (
            "evil.top A 10.1.1.1",
            vec![rpz("evil.top", Exact, "data A 10.1.1.1")],
        ),
        (
            "32.1.2.0.10.rpz-ip CNAME .",
            vec![Item::Skip(Skip::RpzUnsupported)],
        ),
        (
            "104.201.22.104 # 2",
            vec![Item::Skip(Skip::Name(NameErrorKey("ip-address")))],
        ),
        ("# a comment", vec![]),
        ("! adblock comment", vec![]),
        ("; zone comment", vec![]),
        ("[Adblock Plus 2.0]", vec![]),
        ("", vec![]),
        ("   ", vec![]),
        (
            "a..b.top",
            vec![Item::Skip(Skip::Name(NameErrorKey("empty-label")))],
        ),
        ("two words", vec![Item::Skip(Skip::UnknownFormat)]),
        (
            "# category: loan",
            vec![Item::Header(Header::Category("loan".into()))],
        ),
        (
            "! Category: Investment",
            vec![Item::Header(Header::Category("investment".into()))],
        ),
        (
            "# match: exact",
            vec![Item::Header(Header::Match("exact".into()))],
        ),
        ("# Title: Scam Block List", vec![]),
    ];
    for (line, want) in cases {
        assert_eq!(one(line), want, "line {line:?}");
    }
}

#[test]
fn inline_note_is_kept() {
    let got = one("09uyasw.com # 2");
    assert_eq!(
        got,
        vec![Item::Rule(Rule {
            name: "09uyasw.com".into(),
            scope: Subtree,
            polarity: Block,
            explicit_scope: false,
            note: Some("2".into()),
        })]
    );
}

#[test]
fn rpz_zone_with_multiline_soa() {
    let zone = [
        "$TTL 300",
        "@ IN SOA localhost. hostmaster.localhost. (",
        "        2026071701 ; serial",
        "        300 )      ; negative TTL",
        "  IN NS localhost.",
        ";",
        "0-google.com CNAME .",
        "*.0-google.com CNAME . ; trailing comment",
    ];
    let got = parse_all(&zone);
    assert_eq!(
        got,
        vec![
            Item::Skip(Skip::ZoneRecord),
            Item::Skip(Skip::ZoneRecord),
            rpz("0-google.com", Exact, "nxdomain"),
            rpz("0-google.com", Below, "nxdomain"),
        ]
    );
}

#[test]
fn rpz_absolute_owner_with_origin() {
    let got = parse_all(&["$ORIGIN rpz.example.", "evil.top.rpz.example. CNAME ."]);
    assert_eq!(got, vec![rpz("evil.top", Exact, "nxdomain")]);
}

#[test]
fn bytes_level_guards() {
    let mut p = Parser::new();
    let mut out = Vec::new();
    p.parse_bytes(&[0xff, 0xfe, 0x00, 0x41], &mut |i| out.push(i));
    p.parse_bytes(&vec![b'a'; MAX_LINE_LEN + 1], &mut |i| out.push(i));
    assert_eq!(
        out,
        vec![Item::Skip(Skip::NotUtf8), Item::Skip(Skip::LineTooLong)]
    );
}

/// What the parser yields for raw bytes.
fn parse_raw(line: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    Parser::new().parse_bytes(line, &mut |i| out.push(i));
    out
}

#[test]
fn bare_names_are_exactly_the_lines_the_parser_takes_as_one_plain_name() {
    let taken = [
        "evil.top",
        "Evil-Shop.TOP",
        "pc_apax.art-best.com",
        "a.b.c.d.e",
        "localhost",
        "xn--fiqs8s.cn",
        "1.2.3.x",
        "1-2.3",
        "evil.top\r",
    ];
    for l in taken {
        let name = bare_name(l.as_bytes()).unwrap_or_else(|| panic!("{l:?} not taken"));
        let want = l.trim_end_matches('\r').to_ascii_lowercase();
        assert_eq!(name.to_ascii_lowercase(), want);
        assert_eq!(
            parse_raw(l.as_bytes()),
            vec![rule(&want, Subtree, Block, false)],
            "{l:?}"
        );
    }
    let left = [
        "",
        "1.2.3.4",
        "10.0.0.1",
        "123",
        ".evil.top",
        "evil.top.",
        "a..b",
        "*.evil.top",
        "||evil.top^",
        "evil.top # note",
        " evil.top",
        "evil.top ",
        "# category: loan",
        "evil.top:8080",
        "evil.top/x",
        "安順.shop",
        "\u{feff}evil.top",
        "evil\t.top",
    ];
    for l in left {
        assert_eq!(bare_name(l.as_bytes()), None, "{l:?}");
    }
    let long_label = format!("{}.top", "a".repeat(64));
    assert_eq!(bare_name(long_label.as_bytes()), None);
    let long_name = format!("{}.top", ["abcdefghi"; 26].join("."));
    assert!(long_name.len() > 253);
    assert_eq!(bare_name(long_name.as_bytes()), None);
}

proptest::proptest! {
    #[test]
    fn a_bare_name_parses_to_one_plain_rule(line in proptest::collection::vec(
        proptest::sample::select(b"aZ09.-_*|^:/# \r\t@!$;,\xc3\xa4".to_vec()), 0..24)) {
        if let Some(name) = bare_name(&line) {
            let want = name.to_ascii_lowercase();
            proptest::prop_assert_eq!(parse_raw(&line), vec![rule(&want, Subtree, Block, false)]);
        }
    }
}

#[test]
fn rpz_actions_are_read_back_from_the_note() {
    assert_eq!(rpz_action("rpz=nxdomain"), Some(RpzAction::Nxdomain));
    assert_eq!(rpz_action("rpz=nodata"), Some(RpzAction::Nodata));
    assert_eq!(rpz_action("rpz=drop"), Some(RpzAction::Drop));
    assert_eq!(rpz_action("rpz=tcp-only"), Some(RpzAction::TcpOnly));
    assert_eq!(
        rpz_action("rpz=data A 192.0.2.1|TXT \"x\""),
        Some(RpzAction::Data("A 192.0.2.1|TXT \"x\""))
    );
    assert_eq!(rpz_action("case GA-2026-17"), None);
    assert_eq!(rpz_action("rpz=whatever"), None);
}
