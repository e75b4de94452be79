use super::*;

fn check(text: &str) -> Result<Config, ConfigError> {
    RawConfig::from_toml(text, "test.toml")?.validate(Path::new("/etc/fanzha"), None)
}

#[test]
fn embedded_defaults_match_design() {
    let c = Config::embedded();
    assert_eq!(c.server.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(c.ops_listen, "127.0.0.1:9153".parse().unwrap());
    assert_eq!(c.resolver.mode, ResolverMode::Recursive);
    assert_eq!(c.blocklist.dirs, vec![PathBuf::from("./blocklists")]);
    assert_eq!(c.sinkhole.v6, Some("::1".parse().unwrap()));
    assert_eq!(c.sinkhole.ttl, 60);
}

#[test]
fn relative_paths_follow_the_config_file() {
    let c = check("[blocklist]\ndirs = [\"lists\", \"/abs\"]\n").unwrap();
    assert_eq!(
        c.blocklist.dirs,
        vec![PathBuf::from("/etc/fanzha/lists"), PathBuf::from("/abs")]
    );
}

#[test]
fn bad_values_name_key_value_and_fix() {
    let cases = [
        (
            "[server]\nlisten = [\"127.0.0.1\"]",
            "server.listen[0]",
            "with a port",
        ),
        ("[server]\nacl = [\"10.0.0.0/33\"]", "server.acl[0]", "CIDR"),
        ("[cache]\nmax_bytes = 1000", "cache.max_bytes", "1 MiB"),
        (
            "[resolver]\nmode = \"iterate\"",
            "resolver.mode",
            "\"recursive\" or \"forward\"",
        ),
        (
            "[resolver]\nmode = \"forward\"",
            "resolver.upstreams",
            "at least one upstream",
        ),
        (
            "[resolver]\nupstreams = [\"8.8.8.8\"]",
            "resolver.upstreams[0]",
            "udp://",
        ),
        (
            "[blocklist]\nmax_drop = 2.0",
            "blocklist.max_drop",
            "between 0.0 and 1.0",
        ),
        ("[sinkhole]\nipv4 = \"::1\"", "sinkhole.ipv4", "IPv4"),
        (
            "[[lists]]\npath = \"a.txt\"\naction = \"drop\"",
            "lists[0].action",
            "nxdomain",
        ),
        (
            "[[lists]]\npath = \"a.txt\"\nmatch = \"prefix\"",
            "lists[0].match",
            "exact",
        ),
        (
            "[categories.loan]\naction = \"drop\"",
            "categories.loan.action",
            "sinkhole",
        ),
        ("[report]\nurl = \"ftp://x\"", "report.url", "https://"),
        (
            "[report]\nurl = \"https://p.example/hits\"\nsecret = \"short\"",
            "report.secret",
            "16 characters",
        ),
        (
            "[[places]]\ncidr = \"10.1.0.0/16\"\ndistrict = \"\"",
            "places[0].district",
            "district",
        ),
        (
            "[[forward_zones]]\nname = \"corp.lan\"\nupstreams = []",
            "forward_zones[0].upstreams",
            "at least one upstream",
        ),
        (
            "[[forward_zones]]\nname = \"corp.lan\"\nupstreams = [\"10.0.0.53\"]",
            "forward_zones[0].upstreams[0]",
            "udp://",
        ),
        (
            "[server]\nlog_format = \"xml\"",
            "server.log_format",
            "\"json\"",
        ),
        (
            "[resolver]\nnodefault = [\"example.com\"]",
            "resolver.nodefault[0]",
            "10.in-addr.arpa",
        ),
        (
            "[[local_records]]\nname = \"a.lan\"\ntype = \"A\"\ndata = \"::1\"",
            "local_records[0]",
            "IPv4 address",
        ),
        (
            "[[local_records]]\nname = \"a.lan\"\ntype = \"MX\"\ndata = \"x\"",
            "local_records[0]",
            "A, AAAA, CNAME, TXT or PTR",
        ),
        (
            "[[local_records]]\nname = \"a.lan\"\ntype = \"A\"\ndata = \"192.0.2.1\"\n\
             [[local_records]]\nname = \"A.lan.\"\ntype = \"CNAME\"\ndata = \"b.lan\"",
            "local_records[1]",
            "a CNAME must be alone",
        ),
    ];
    for (text, key, fix) in cases {
        let err = check(text).expect_err(text).to_string();
        assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
        assert!(err.contains(fix), "{text}: {err}");
    }
}

#[test]
fn durations_take_units_and_the_older_spellings_still_work() {
    let c = check(
        "[server]\ntcp_idle_timeout = \"1m\"\n[resolver]\ntimeout_ms = \"1s\"\n\
         [cache]\nserve_stale = \"2d\"\n[blocklist]\ndebounce_ms = 250\n\
         [sinkhole]\nipv6 = \"none\"\n[report]\ndedup_window = \"90s\"\nmax_backoff = 30\n",
    )
    .unwrap();
    assert_eq!(c.server.tcp_idle_timeout, Duration::from_secs(60));
    assert_eq!(c.resolver.timeout, Duration::from_millis(1000));
    assert_eq!(c.cache.serve_stale, Duration::from_secs(2 * 86_400));
    assert_eq!(c.sinkhole.v6, None);
    assert_eq!(c.report.dedup_window, Duration::from_secs(90));
    // The older forms: "" for no AAAA answer, `ca` for the platform's CA.
    let c = check("[sinkhole]\nipv6 = \"\"\n[report]\nca = \"ca.pem\"\n").unwrap();
    assert_eq!(c.sinkhole.v6, None);
    assert!(c.report.ca.unwrap().ends_with("ca.pem"));
    // Refused with the key's name and the fix.
    for (text, key) in [
        ("[resolver]\ntimeout_ms = \"soon\"", "timeout_ms"),
        (
            "[server]\ntcp_idle_timeout = \"1500ms\"",
            "tcp_idle_timeout",
        ),
    ] {
        let err = check(text).expect_err(text).to_string();
        assert!(
            err.contains(key) && (err.contains("300ms") || err.contains("whole seconds")),
            "{text}: {err}"
        );
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = check("[server]\nlisten_on = []").unwrap_err().to_string();
    assert!(err.contains("listen_on"), "{err}");
    let err = check("[blocklst]\ndirs = []").unwrap_err().to_string();
    assert!(err.contains("blocklst"), "{err}");
}

#[test]
fn full_example_parses() {
    let c = check(
        r#"
[server]
listen = ["0.0.0.0:53", "[::]:53"]
acl = ["10.1.0.0/16", "fd00::/8"]
[resolver]
mode = "forward"
upstreams = ["udp://192.0.2.1:53", "tls://192.0.2.2:853#dns.example"]
[sinkhole]
ipv6 = ""
[[lists]]
path = "blocklists/loan.txt"
category = "Loan"
match = "exact"
[categories.phishing]
action = "nxdomain"
[[places]]
cidr = "10.1.0.0/16"
district = "滨江区"
street = "西兴街道"
community = "缤纷社区"
"#,
    )
    .unwrap();
    assert_eq!(c.resolver.mode, ResolverMode::Forward);
    assert_eq!(c.sinkhole.v6, None);
    assert_eq!(c.blocklist.lists[0].category.as_deref(), Some("loan"));
    assert_eq!(
        c.sinkhole.category_actions.get("phishing"),
        Some(&Action::Nxdomain)
    );
    assert_eq!(c.places.len(), 1);
}

#[test]
fn shipped_config_files_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let defaults = Config::load(Some(&root.join("config/fanzha.toml"))).unwrap();
    let embedded = Config::defaults();
    assert_eq!(defaults.server.listen, embedded.server.listen);
    assert_eq!(defaults.server.acl, embedded.server.acl);
    assert_eq!(defaults.ops_listen, embedded.ops_listen);
    assert_eq!(defaults.sinkhole.ttl, embedded.sinkhole.ttl);
    assert_eq!(defaults.resolver.timeout, embedded.resolver.timeout);
    // Every key, not only those above: the documented file is the defaults.
    assert_eq!(
        toml::to_string(&defaults.effective()).unwrap(),
        toml::to_string(&embedded.effective()).unwrap()
    );
    let prod = Config::load(Some(&root.join("config/production.toml"))).unwrap();
    assert_eq!(prod.server.listen.len(), 2);
    assert!(prod.server.listen.iter().all(|a| a.port() == 53));
    assert_eq!(
        prod.control.as_deref(),
        Some(std::path::Path::new("/run/fanzha/control.sock"))
    );
}

/// The embedded defaults put the control socket where `fanzha ctl` finds it from
/// any working directory; a config file's relative state_dir is the file's.
#[test]
fn the_embedded_defaults_control_socket_is_absolute() {
    let c = Config::embedded();
    let sock = c.control.expect("on by default");
    assert!(sock.is_absolute(), "{}", sock.display());
    assert_eq!(sock, super::embedded_socket());
    assert!(sock.ends_with("control.sock"));
}

#[test]
fn the_control_socket_defaults_to_the_state_dir_and_can_be_turned_off() {
    let d = tempfile::tempdir().unwrap();
    let load = |text: &str| RawConfig::from_toml(text, "t.toml")?.validate(d.path(), None);
    let c = load("[server]\nstate_dir = \"st\"\n").unwrap();
    assert_eq!(c.control, Some(d.path().join("st/control.sock")));
    let c = load("[control]\nenabled = false\n").unwrap();
    assert_eq!(c.control, None);
    let c = load("[control]\nsocket = \"/run/x/c.sock\"\n").unwrap();
    assert_eq!(
        c.control.as_deref(),
        Some(std::path::Path::new("/run/x/c.sock"))
    );
    for (text, why) in [
        ("[control]\nsocket = \"\"\n", "enabled = false"),
        (
            &format!("[control]\nsocket = \"/{}\"\n", "d/".repeat(60)),
            "at most 107 bytes",
        ),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains("control.socket") && e.contains(why), "{e}");
    }
}

#[test]
fn the_effective_config_loads_back_to_the_same_config_and_hides_the_secret() {
    let d = tempfile::tempdir().unwrap();
    let text = "[server]\ntcp_idle_timeout = \"1m\"\n[resolver]\ntimeout_ms = 1500\n\
                [report]\nurl = \"https://p.example/hits\"\nsecret = \"0123456789abcdef-secret\"\n\
                [[local_records]]\nname = \"warn.fanzha.test\"\ntype = \"A\"\ndata = \"10.0.0.1\"\n";
    let c = RawConfig::from_toml(text, "t.toml")
        .unwrap()
        .validate(d.path(), None)
        .unwrap();
    let eff = c.effective();
    assert_eq!(eff.report.secret, "(hidden)");
    let dumped = toml::to_string_pretty(&eff).unwrap();
    assert!(dumped.contains("tcp_idle_timeout = \"1m\""), "{dumped}");
    assert!(dumped.contains("timeout_ms = \"1s 500ms\""), "{dumped}");
    // With the secret put back, the dump loads into the same config.
    let back = RawConfig::from_toml(
        &dumped.replace("(hidden)", "0123456789abcdef-secret"),
        "d.toml",
    )
    .unwrap()
    .validate(d.path(), None)
    .unwrap();
    assert_eq!(format!("{back:?}"), format!("{c:?}"));
}

#[test]
fn the_report_secret_can_come_from_a_file_or_a_systemd_credential() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("plain-secret"), "from-a-file-0123456789\n").unwrap();
    let creds = d.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("report-secret"), "from-a-credential-0123\n").unwrap();
    let load = |text: &str| RawConfig::from_toml(text, "t.toml")?.validate(d.path(), None);
    let url = "[report]\nurl = \"http://127.0.0.1:9/h\"\n";
    let c = load(&format!("{url}secret_file = \"plain-secret\"\n")).unwrap();
    assert_eq!(c.report.secret, "from-a-file-0123456789");
    // SAFETY (for the environment): this test alone in the crate reads or writes
    // CREDENTIALS_DIRECTORY.
    unsafe { std::env::set_var("CREDENTIALS_DIRECTORY", &creds) };
    let c = load(&format!("{url}secret_file = \"report-secret\"\n"));
    unsafe { std::env::remove_var("CREDENTIALS_DIRECTORY") };
    assert_eq!(c.unwrap().report.secret, "from-a-credential-0123");
    let e = load(&format!(
        "{url}secret = \"inline-secret-0123456\"\nsecret_file = \"plain-secret\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("report.secret_file") && e.contains("not both"),
        "{e}"
    );
    let e = load(&format!("{url}secret_file = \"missing\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("report.secret_file") && e.contains("LoadCredential"),
        "{e}"
    );
    // The hashing key is the appliance's own, in state_dir by default.
    let c = load("[report]\nclient_ip = \"hash\"\n").unwrap();
    assert_eq!(
        c.report.hash_key_file,
        d.path().join("state/report-hash.key")
    );
}

#[test]
fn policies_per_place_and_shadow_lists() {
    let c = check(
        r#"
[[lists]]
path = "trial.txt"
mode = "shadow"
[[policies]]
name = "school"
categories = { gambling = "block", investment = "nxdomain", loan = "shadow", task = "off" }
[[places]]
cidr = "10.1.2.0/24"
district = "滨江区"
policy = "school"
"#,
    )
    .unwrap();
    assert_eq!(c.blocklist.lists[0].action, Some(Action::Shadow));
    let ip = crate::places::Asker::at("10.1.2.9".parse().unwrap());
    assert_eq!(c.places.action(ip, "gambling"), Some(Action::Sinkhole));
    assert_eq!(c.places.action(ip, "investment"), Some(Action::Nxdomain));
    assert_eq!(c.places.action(ip, "loan"), Some(Action::Shadow));
    assert_eq!(c.places.action(ip, "task"), Some(Action::Off));
    assert_eq!(c.places.action(ip, "phishing"), None);
    // A place naming no policy, a bad action, a bad mode: refused, naming the key.
    for (text, key) in [
        (
            "[[places]]\ncidr = \"10.0.0.0/8\"\ndistrict = \"d\"\npolicy = \"nope\"\n",
            "places[0].policy",
        ),
        (
            "[[policies]]\nname = \"p\"\ncategories = { loan = \"maybe\" }\n",
            "policies[0].categories.loan",
        ),
        (
            "[[lists]]\npath = \"x.txt\"\nmode = \"trial\"\n",
            "lists[0].mode",
        ),
    ] {
        let e = check(text).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn place_alerts_are_checked_and_their_secrets_read() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("ding.secret"), "SECabcdef0123456789\n").unwrap();
    std::fs::write(d.path().join("short.secret"), "short\n").unwrap();
    let load = |text: &str| RawConfig::from_toml(text, "t.toml")?.validate(d.path(), None);
    let place = |alert: &str| {
        format!(
            "[[places]]\ncidr = \"10.1.2.0/24\"\ndistrict = \"滨江区\"\nstreet = \"西兴街道\"\ncommunity = \"缤纷社区\"\nalert = {alert}\n"
        )
    };
    let c = load(&format!(
        "[alerts]\ninterval = \"5m\"\ndevices = \"truncate\"\nutc_offset = \"+08:00\"\n{}",
        place(
            r#"{ kind = "dingtalk", url = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN123", secret_file = "ding.secret" }"#
        )
    ))
    .unwrap();
    // The robot's token is a credential: not in Debug, not in dump-config.
    assert!(!format!("{c:?}").contains("TOKEN123"), "{c:?}");
    let dumped = toml::to_string(&c.effective()).unwrap();
    assert!(!dumped.contains("TOKEN123"), "{dumped}");
    assert!(dumped.contains("access_token=(hidden)"), "{dumped}");
    assert_eq!(c.alerts.interval, Duration::from_secs(300));
    assert_eq!(c.alerts.devices, crate::config::Devices::Truncate);
    assert_eq!(c.alerts.utc_offset, 8 * 3600);
    let (p, t) = c
        .places
        .alerting(crate::places::Asker::at("10.1.2.3".parse().unwrap()))
        .unwrap();
    assert_eq!(
        (p.community.as_str(), t.secret.as_str()),
        ("缤纷社区", "SECabcdef0123456789")
    );
    assert!(
        !format!("{c:?}").contains("SECabcdef"),
        "the secret is not in Debug"
    );
    let defaults = Config::embedded().alerts;
    assert_eq!(defaults.interval, Duration::from_secs(600));
    assert_eq!(defaults.devices, crate::config::Devices::Hash);
    for (alert, key, fix) in [
        (
            r#"{ kind = "sms", url = "https://x.example/a" }"#,
            "places[0].alert.kind",
            "dingtalk",
        ),
        (
            r#"{ kind = "wecom", url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send" }"#,
            "places[0].alert.url",
            "key=",
        ),
        (
            r#"{ kind = "wecom", url = "https://q.example/send?key=K", secret_file = "ding.secret" }"#,
            "places[0].alert.secret_file",
            "no secret",
        ),
        (
            r#"{ kind = "webhook", url = "https://h.example/alerts" }"#,
            "places[0].alert.secret_file",
            "signed",
        ),
        (
            r#"{ kind = "webhook", url = "https://h.example/alerts", secret_file = "short.secret" }"#,
            "places[0].alert.secret_file",
            "16",
        ),
        (
            r#"{ kind = "dingtalk", url = "https://d.example/r", secret_file = "missing" }"#,
            "places[0].alert.secret_file",
            "cannot read",
        ),
        (
            r#"{ kind = "dingtalk", url = "ftp://d.example/r" }"#,
            "places[0].alert.url",
            "webhook URL",
        ),
    ] {
        let e = load(&place(alert)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(fix), "{alert}: {e}");
    }
    for (text, key) in [
        ("[alerts]\ninterval = 0", "alerts.interval"),
        ("[alerts]\nmax_per_hour = 0", "alerts.max_per_hour"),
        ("[alerts]\ndevices = \"mac\"", "alerts.devices"),
        ("[alerts]\nutc_offset = \"8\"", "alerts.utc_offset"),
        ("[alerts]\nutc_offset = \"+8:00\"", "alerts.utc_offset"),
    ] {
        let e = load(text).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
}

/// docs/configuration.md is the reference made from the structs, so it cannot drift.
#[test]
fn docs_configuration_md_is_the_reference_the_structs_make() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        doc == super::reference::markdown(),
        "docs/configuration.md is not what the config structs say: run \
         `cargo run -q -- reference > docs/configuration.md` and commit it"
    );
}

/// The reference, read from the source, names exactly the keys serde writes for the
/// defaults, and says what each of them means.
#[test]
fn the_reference_names_every_key_serde_knows_and_explains_each() {
    let sections = super::reference::sections();
    let defaults = toml::Value::try_from(RawConfig::default()).unwrap();
    for (name, value) in defaults.as_table().unwrap() {
        let Some(table) = value.as_table().filter(|t| !t.is_empty()) else {
            continue;
        };
        let header = format!("[{name}]");
        let s = sections
            .iter()
            .find(|s| s.header == header)
            .unwrap_or_else(|| panic!("no {header}"));
        for key in table.keys() {
            let documented = s.keys.iter().any(|k| &k.name == key);
            let sub = sections
                .iter()
                .any(|s| s.header.contains(&format!("{name}.{key}]")));
            assert!(documented || sub, "{header} {key} is not in the reference");
        }
    }
    for s in &sections {
        for k in &s.keys {
            assert!(
                !k.doc.is_empty(),
                "{} {} has no doc comment",
                s.header,
                k.name
            );
            assert!(
                !k.ty.is_empty() && !k.default.is_empty(),
                "{} {}",
                s.header,
                k.name
            );
        }
    }
    let lists = sections.iter().find(|s| s.header == "[[lists]]").unwrap();
    let m = lists
        .keys
        .iter()
        .find(|k| k.name == "match")
        .expect("renamed keys keep their file name");
    assert_eq!(m.default, "unset");
    assert_eq!(
        lists
            .keys
            .iter()
            .find(|k| k.name == "path")
            .unwrap()
            .default,
        "required"
    );
    let server = sections.iter().find(|s| s.header == "[server]").unwrap();
    let acl = server.keys.iter().find(|k| k.name == "acl").unwrap();
    let listen = server.keys.iter().find(|k| k.name == "listen").unwrap();
    assert!(
        acl.reload && !listen.reload,
        "SIGHUP applies acl, not listen"
    );
    assert_eq!(listen.default, r#"["127.0.0.1:5353"]"#);
    assert!(sections.iter().any(|s| s.header == "[places.alert]"));
    assert!(
        sections
            .iter()
            .any(|s| s.header == "[[resolver.nameserver_ports]]")
    );
}
