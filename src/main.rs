//! The `fanzha` command: `serve` (the appliance), `ctl` (its control socket), and the
//! offline tools `compile`, `lookup`, `check-config`, `publish` and `keygen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use fanzha::blocklist::{self, Blocklist, CompileReport, Loader};
use fanzha::config::Config;
use fanzha::dns::stages::policy::Policy;

const AFTER_HELP: &str = "\
FILES:
    /etc/fanzha/fanzha.toml        configuration (every key: man 5 fanzha.toml)
    /etc/fanzha/blocklists/        block lists, watched; /etc/fanzha/allowlists/ allow lists
    /etc/fanzha/never-block.txt    names no list may block
    /var/lib/fanzha/               state: the mapped list, the last good compile (a restart
                                   serves it at once), the report spool
    /usr/share/fanzha/             Grafana dashboard, Prometheus alert rules, optional lists

SIGNALS (serve):
    SIGHUP     re-read the config and the lists without dropping a query
    SIGTERM    drain in-flight queries, flush pending hit events, exit 0

EXIT STATUS:
    0 success (lookup: every name allowed), 1 lookup: a name is blocked, 2 error

EXAMPLES:
    fanzha serve --config /etc/fanzha/fanzha.toml
    fanzha check-config                 (/etc/fanzha/fanzha.toml, or --config FILE)
    fanzha lookup --config /etc/fanzha/fanzha.toml www.ezloantw.com
    fanzha compile /srv/lists/ -o fraud.fst

SEE ALSO:
    fanzha.toml(5), fanzha-ctl(8); the guides in /usr/share/doc/fanzha/";

/// fanzha (反诈) — a DNS resolver appliance that blocks fraud domains.
#[derive(Parser, Debug)]
#[command(
    name = "fanzha",
    version,
    about = "fanzha (反诈) — a DNS resolver appliance that blocks fraud domains, shows residents a warning page and reports each hit to the district platform",
    after_long_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Compile block and allow lists into one memory-mappable file.
    ///
    /// Reads every list file under the given directories (or `[blocklist] dirs` and
    /// `allow_dirs` of the config), prints a summary (entries per category and list,
    /// skipped lines by reason, rules refused by guardrails) and writes FILE atomically.
    /// Exit status: 0 compiled (even with skipped lines), 2 error.
    Compile {
        /// Config file for `[blocklist]` and `[[lists]]` (default: /etc/fanzha/fanzha.toml when it exists, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Allowlist directories (with DIRs; otherwise from the config).
        #[arg(long = "allow", value_name = "DIR")]
        allow: Vec<PathBuf>,
        /// Never-block file (with DIRs; otherwise from the config).
        #[arg(long, value_name = "FILE")]
        never_block: Option<PathBuf>,
        /// Compile even if the new list is much smaller than the existing FILE.
        #[arg(long)]
        force: bool,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Block-list directories (instead of the config's).
        dirs: Vec<PathBuf>,
    },
    /// Say whether names are blocked, and why.
    ///
    /// Exit status: 0 every name allowed, 1 some name blocked, 2 error.
    Lookup {
        /// Config file (default: /etc/fanzha/fanzha.toml when it exists, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A compiled list to use instead of the config's lists.
        #[arg(long, value_name = "FILE")]
        compiled: Option<PathBuf>,
        /// Names to check (Unicode names are converted with IDNA).
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run the appliance: DNS on `server.listen`, the ops endpoint on `ops.listen`.
    ///
    /// Without --config it runs on the embedded defaults: DNS on 127.0.0.1:5353 (UDP and
    /// TCP), the lists in ./blocklists, recursion from the IANA root servers, the ops
    /// endpoint on 127.0.0.1:9153. SIGHUP re-reads the config and the lists; SIGTERM
    /// drains and exits 0.
    Serve {
        /// Config file (default: /etc/fanzha/fanzha.toml when it exists, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config without serving: every key, and what `serve` would trip over
    /// (missing list directories, a listener on an address this machine does not have,
    /// an unreadable secret file). A sinkhole address the warning page does not listen
    /// on is a warning. Exit status 0 fine (warnings printed), 2 a problem (each
    /// printed with its key).
    CheckConfig {
        /// Config file (default: /etc/fanzha/fanzha.toml when it exists, else the
        /// embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The config file, as --config (the older form).
        file: Option<PathBuf>,
    },
    /// Compile the lists and publish them, signed, as a feed for appliances to follow.
    ///
    /// Writes into DIR (serve it with any static web server): list-<serial>.fst,
    /// manifest.json (serial, build time, expiry, counts, sha256) and a minisign
    /// signature for each (`minisign -Vm FILE -p KEY.pub` verifies them). The serial
    /// grows with every publish; appliances refuse anything at or below theirs.
    /// With --delta, a small change is published as delta-<serial>.json (the names
    /// changed since the previous publish), which appliances lay over the list they
    /// have instead of downloading it again.
    /// Exit status: 0 published, 2 error.
    Publish {
        /// Config file for `[blocklist]` and `[[lists]]` (default: /etc/fanzha/fanzha.toml when it exists, else the embedded defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The secret key (`fanzha keygen`, or `minisign -G` with its password in
        /// FANZHA_KEY_PASSWORD).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The feed directory.
        #[arg(long, short, value_name = "DIR")]
        out: PathBuf,
        /// How long appliances treat the list as current; past it they keep blocking
        /// with it and raise an alert.
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        valid: std::time::Duration,
        /// Publish even if the list is much smaller than the previous one.
        #[arg(long)]
        force: bool,
        /// Publish only the changes since the previous publish, as a signed delta,
        /// while the chain of deltas changes at most a fifth of the last full list's
        /// names; past that (or without an earlier publish) a full list.
        #[arg(long)]
        delta: bool,
    },
    /// Print the configuration reference as Markdown: every key of fanzha.toml with
    /// its type, default, meaning and whether SIGHUP applies it (docs/configuration.md;
    /// the same text as `man 5 fanzha.toml`). With --metrics: every metric, with its
    /// labels and meaning (docs/metrics.md).
    Reference {
        /// The metrics instead of the config keys.
        #[arg(long)]
        metrics: bool,
    },
    /// Write the man pages fanzha.8, fanzha-ctl.8 and fanzha.toml.5 into DIR.
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Make a key pair for `fanzha publish`: PREFIX.key (secret, mode 0600; keep it on
    /// the build box) and PREFIX.pub (for `[feed] public_key_file` on appliances).
    Keygen {
        /// Path and name of the two files, without extension.
        prefix: PathBuf,
    },
    /// Talk to the running daemon over its control socket (like unbound-control).
    ///
    /// The socket is `[control] socket` of the config (default: control.sock in
    /// `server.state_dir`; the packaged config: /run/fanzha/control.sock), mode 0660:
    /// run it as root or in the service's group.
    ///
    /// Exit status: 0 done (lookup: every name allowed), 1 lookup: some name is
    /// blocked, 2 the daemon refused or failed the command (the reason is printed),
    /// 3 the daemon could not be reached.
    #[command(after_long_help = CTL_HELP)]
    Ctl {
        /// Config file naming the socket (default: /etc/fanzha/fanzha.toml when it
        /// exists, else the embedded defaults).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The socket, instead of the config's.
        #[arg(long, global = true, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print the answer as JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        cmd: fanzha::ctl::Command,
    },
}

const CTL_HELP: &str = "\
EXAMPLES:
    fanzha ctl status                              (as root, or in the service's group)
    fanzha ctl lookup www.ezloantw.com             (exit 1 when blocked)
    fanzha ctl flush-cache example.com             (example.com and every name below it)
    fanzha ctl top-blocked 20 --json

SEE ALSO:
    fanzha(8), fanzha.toml(5)";

/// The man pages, by file name: fanzha(8) and fanzha-ctl(8) from the commands'
/// help, fanzha.toml(5) from the configuration reference.
fn man_pages() -> Result<Vec<(&'static str, Vec<u8>)>> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let ctl = cmd
        .find_subcommand("ctl")
        .context("no ctl command")?
        .clone()
        .name("fanzha-ctl")
        .bin_name("fanzha ctl");
    let toml = fanzha::config::reference::man_page(env!("CARGO_PKG_VERSION"));
    Ok(vec![
        ("fanzha.8", man_page(cmd, "fanzha")?),
        ("fanzha-ctl.8", man_page(ctl, "fanzha ctl")?),
        ("fanzha.toml.5", toml.into_bytes()),
    ])
}

/// One section-8 page: the command's name, synopsis, description and options (by
/// clap_mangen), then each visible subcommand with its own options, then the
/// examples and files of its long help.
fn man_page(cmd: clap::Command, invoked: &str) -> Result<Vec<u8>> {
    use fanzha::config::reference::roff;
    use std::io::Write as _;
    let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = sub.get_name();
        if name == "ctl" {
            writeln!(out, ".SS \"{invoked} ctl\"\nSee\n.BR fanzha\\-ctl (8).")?;
            continue;
        }
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string());
        writeln!(
            out,
            ".SS \"{invoked} {name}\"\n{}",
            roff(&about.unwrap_or_default())
        )?;
        for arg in sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_id() != "help")
        {
            let flag = match (arg.get_long(), arg.get_short()) {
                (Some(l), Some(s)) => format!("\\-{s}, \\-\\-{l}"),
                (Some(l), None) => format!("\\-\\-{l}"),
                _ => format!("<{}>", arg.get_id().as_str().to_uppercase()),
            };
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            writeln!(out, ".TP\n.B {flag}\n{}", roff(&help.unwrap_or_default()))?;
        }
    }
    man.render_extra_section(&mut out)?;
    let see = if invoked == "fanzha" {
        ".BR fanzha\\-ctl (8),"
    } else {
        ".BR fanzha (8),"
    };
    writeln!(out, ".SH SEE ALSO\n{see}\n.BR fanzha.toml (5)")?;
    Ok(out)
}

/// Logs to stderr (journald takes them from there): text, or one JSON object per line.
fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // hickory's crates warn once per odd upstream packet (a late reply, a mismatched
        // name server), which floods a journal under a flood of misses; fanzha counts
        // upstream results in metrics instead. RUST_LOG brings them back.
        tracing_subscriber::EnvFilter::new(
            "info,hickory_proto=error,hickory_net=error,hickory_resolver=error",
        )
    });
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        fmt.json().init();
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` loads its config once, first: it says how to log. One that does not
    // load is reported by `run`, in text.
    let serve_cfg = match &cli.cmd {
        Cmd::Serve { config } => Some(Config::load(chosen(config.clone()).as_deref())),
        _ => None,
    };
    let json = matches!(&serve_cfg, Some(Ok(c)) if c.server.log_json);
    init_tracing(json);
    match run(cli, serve_cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fanzha: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the command; `serve_cfg` is `serve`'s config, loaded by `main`.
fn run(
    cli: Cli,
    serve_cfg: Option<Result<Config, fanzha::config::ConfigError>>,
) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Compile {
            config,
            output,
            allow,
            never_block,
            force,
            json,
            dirs,
        } => compile_cmd(
            chosen(config).as_deref(),
            &output,
            allow,
            never_block,
            force,
            json,
            dirs,
        ),
        Cmd::Lookup {
            config,
            compiled,
            names,
        } => {
            let config = chosen(config);
            lookup_cmd(config.as_deref(), compiled.as_deref(), &names)
        }
        Cmd::Serve { config } => serve_cmd(chosen(config), serve_cfg),
        Cmd::Ctl {
            config,
            socket,
            json,
            cmd,
        } => ctl_cmd(config, socket, json, cmd),
        Cmd::Publish {
            config,
            key,
            out,
            valid,
            force,
            delta,
        } => publish_cmd(chosen(config).as_deref(), &key, &out, valid, (force, delta)),
        Cmd::Reference { metrics } => {
            if metrics {
                print!("{}", fanzha::metrics::Metrics::reference());
            } else {
                print!("{}", fanzha::config::reference::markdown());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            for (name, page) in man_pages()? {
                let path = dir.join(name);
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen { prefix } => {
            let (sk, pk, b64) = fanzha::feed::publish::keygen(&prefix)?;
            println!("secret key: {} (keep it on the build box)", sk.display());
            println!("public key: {} ({b64})", pk.display());
            println!("appliances: [feed] public_key = \"{b64}\"");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { config, file } => {
            let config = chosen(config.or(file));
            println!("{}", which(config.as_deref()));
            let c = match config.as_deref() {
                None => Config::embedded(),
                Some(path) => match Config::check_all(path) {
                    (Some(c), _) => c,
                    (None, errors) => {
                        // Every bad key at once, each with its fix.
                        for e in &errors {
                            println!("problem: {e}");
                        }
                        return Ok(ExitCode::from(2));
                    }
                },
            };
            let (mut problems, warnings) =
                fanzha::config::preflight::check(&c, &fanzha::config::preflight::is_local);
            problems.extend(fanzha::urlproxy::preflight(&c.url));
            for w in &warnings {
                println!("warning: {w}");
            }
            for p in &problems {
                println!("problem: {p}");
            }
            if !problems.is_empty() {
                return Ok(ExitCode::from(2));
            }
            println!(
                "ok ({} DNS listener(s), {} ACL entries, {} list dir(s), mode {:?})",
                c.server.listen.len(),
                c.server.acl.len(),
                c.blocklist.dirs.len(),
                c.resolver.mode
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The packaged config, used when a command is given no --config and it exists.
const DEFAULT_CONFIG: &str = "/etc/fanzha/fanzha.toml";

/// The config file a command uses: the one given, else [`DEFAULT_CONFIG`] when it
/// exists, else none (the embedded defaults).
fn chosen(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let p = PathBuf::from(DEFAULT_CONFIG);
        p.is_file().then_some(p)
    })
}

/// Which config a command took, said to the operator.
fn which(config: Option<&Path>) -> String {
    match config {
        Some(p) => format!("config: {}", p.display()),
        None => format!("config: the embedded defaults (no --config, no {DEFAULT_CONFIG})"),
    }
}

/// `fanzha serve`: the appliance, on `config` (`None`: the embedded defaults), as
/// `main` already loaded it (`loaded`).
fn serve_cmd(
    config: Option<PathBuf>,
    loaded: Option<Result<Config, fanzha::config::ConfigError>>,
) -> Result<ExitCode> {
    if config.is_none() {
        // (A config file is named in the "starting" line.)
        tracing::info!("{}", which(None));
    }
    let cfg = match loaded {
        Some(loaded) => loaded?,
        None => Config::load(config.as_deref())?,
    };
    // What check-config would warn of, said in the log at every start (a fresh
    // install runs before its operator has set the appliance's addresses).
    for w in fanzha::config::preflight::check(&cfg, &fanzha::config::preflight::is_local).1 {
        tracing::warn!("config: {w}");
    }
    let threads = cfg.worker_threads();
    // One thread: a current-thread runtime, measurably faster than a
    // work-stealing one on this kind of load.
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("fanzha")
            .build()
    }
    .context("starting the async runtime")?;
    rt.block_on(fanzha::app::serve(config, cfg))?;
    Ok(ExitCode::SUCCESS)
}

fn compile_cmd(
    config: Option<&Path>,
    output: &Path,
    allow: Vec<PathBuf>,
    never_block: Option<PathBuf>,
    force: bool,
    json: bool,
    dirs: Vec<PathBuf>,
) -> Result<ExitCode> {
    let cfg = Config::load(config)?;
    let mut bcfg = cfg.blocklist.clone();
    if !dirs.is_empty() {
        bcfg.dirs = dirs;
        bcfg.allow_dirs = allow;
        bcfg.lists.clear();
        bcfg.never_block = never_block;
    } else if let Some(nb) = never_block {
        bcfg.never_block = Some(nb);
    }
    let previous = match Blocklist::open(output, false) {
        Ok(l) => Some(l.len() as u64),
        Err(_) => None,
    };
    let spec = Loader::spec(&bcfg, previous, force)?;
    let report = blocklist::compile(&spec, output)
        .with_context(|| format!("compiling into {}", output.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, output);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &CompileReport, output: &Path) {
    println!(
        "compiled {} names ({} block, {} allow) into {} ({} bytes, {:.1} bytes/name) in {:.2} s",
        r.entries,
        r.block_entries,
        r.allow_entries,
        output.display(),
        r.file_bytes,
        if r.entries > 0 {
            r.file_bytes as f64 / r.entries as f64
        } else {
            0.0
        },
        r.elapsed.as_secs_f64()
    );
    println!("\nblocked names by category:");
    for (c, n) in &r.per_category {
        println!("  {c:<24} {n}");
    }
    println!("\nlists:");
    for l in &r.lists {
        let skipped: u64 = l.skipped.values().sum();
        println!(
            "  {:<40} {:<14} {:>8} rules {:>6} skipped {:>4} refused{}{}",
            l.name,
            if l.allowlist {
                "(allow)".to_string()
            } else {
                l.category.clone()
            },
            l.rules,
            skipped,
            l.refused,
            if l.path_rules > 0 {
                format!(" {:>6} path rules", l.path_rules)
            } else {
                String::new()
            },
            if l.warnings.is_empty() {
                String::new()
            } else {
                format!("  warnings: {}", fmt_counts(&l.warnings))
            }
        );
    }
    if r.path_rules > 0 {
        println!(
            "\npath rules (pages of a host, not the host; DNS sends these hosts to the URL proxy): {} on {} hosts",
            r.path_rules,
            r.path_hosts.len()
        );
        println!(
            "  by scheme: {} (http: checked for every place the proxy serves; https and both: over HTTPS for managed_tls places only)",
            fmt_counts(&r.path_schemes)
        );
        let mut by_count: Vec<_> = r.path_hosts.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (h, n) in by_count.iter().take(20) {
            println!("  {h:<40} {n}");
        }
        if by_count.len() > 20 {
            println!(
                "  … and {} more hosts (--json lists all)",
                by_count.len() - 20
            );
        }
    }
    if !r.skipped.is_empty() {
        println!("\nskipped lines by reason: {}", fmt_counts(&r.skipped));
        for e in &r.examples {
            println!("  {}:{}: {} — {}", e.file, e.line, e.reason, e.text);
        }
    }
    if !r.refused.is_empty() {
        println!("\nrules refused by guardrails: {}", r.refused.len());
        for f in r.refused.iter().take(50) {
            println!(
                "  {}:{}: {} — {} ({})",
                f.file, f.line, f.name, f.reason, f.detail
            );
        }
        if r.refused.len() > 50 {
            println!("  … and {} more (--json lists all)", r.refused.len() - 50);
        }
    }
}

fn fmt_counts(m: &std::collections::BTreeMap<&'static str, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn publish_cmd(
    config: Option<&Path>,
    key: &Path,
    out: &Path,
    valid: std::time::Duration,
    (force, delta): (bool, bool),
) -> Result<ExitCode> {
    let cfg = Config::load(config)?;
    let sk =
        fanzha::feed::publish::read_secret_key(key, std::env::var("FANZHA_KEY_PASSWORD").ok())?;
    let previous = std::fs::read(out.join(fanzha::feed::manifest::MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<fanzha::feed::manifest::Manifest>(&b).ok())
        .map(|m| m.entries);
    let spec = Loader::spec(&cfg.blocklist, previous, force)?;
    let p = fanzha::feed::publish::publish(
        &spec,
        out,
        &sk,
        valid,
        std::time::SystemTime::now(),
        delta,
    )?;
    let m = &p.manifest;
    match &p.delta {
        Some(Ok(n)) if !m.deltas.is_empty() => println!(
            "delta {}: {n} names changed since serial {}; chain of {} over base {}",
            m.serial,
            m.deltas.last().map_or(0, |d| d.from_serial),
            m.deltas.len(),
            m.base()
        ),
        Some(Err(why)) => println!("a full list, not a delta: {why}"),
        _ => {}
    }
    println!(
        "published serial {} into {}: {} names ({} block, {} allow), {} bytes, expires {}",
        m.serial,
        out.display(),
        m.entries,
        m.block_entries,
        m.allow_entries,
        m.bytes,
        m.expires_at
    );
    let skipped = p.report.skipped_total();
    if skipped > 0 || !p.report.refused.is_empty() {
        println!(
            "{skipped} lines skipped, {} rules refused (fanzha compile shows which)",
            p.report.refused.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ctl_cmd(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    json: bool,
    cmd: fanzha::ctl::Command,
) -> Result<ExitCode> {
    use fanzha::ctl::{EXIT_FAILED, EXIT_UNREACHABLE, client};
    let socket = match socket {
        Some(s) => s,
        None => {
            let config = chosen(config);
            let cfg = Config::load(config.as_deref())?;
            cfg.control.with_context(|| {
                format!(
                    "[control] enabled = false in {}: the daemon has no control socket",
                    config
                        .as_deref()
                        .unwrap_or(Path::new("the embedded defaults"))
                        .display()
                )
            })?
        }
    };
    match client::ask(&socket, &cmd.to_request()) {
        Ok(reply) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&reply.data)?);
            } else if reply.exit == EXIT_FAILED {
                eprintln!("fanzha ctl: {}", reply.text);
            } else {
                println!("{}", reply.text);
            }
            Ok(ExitCode::from(reply.exit))
        }
        Err(e) => {
            eprintln!("fanzha ctl: {e}");
            Ok(ExitCode::from(EXIT_UNREACHABLE))
        }
    }
}

fn lookup_cmd(
    config: Option<&Path>,
    compiled: Option<&Path>,
    names: &[String],
) -> Result<ExitCode> {
    let cfg = Config::load(config)?;
    let (list, _tmp) = match compiled
        .map(Path::to_path_buf)
        .or(cfg.blocklist.compiled.clone())
    {
        Some(p) => (Blocklist::open(&p, true)?, None),
        None => {
            let dir = std::env::temp_dir().join(format!("fanzha-lookup-{}", std::process::id()));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let out = dir.join("list.fst");
            let spec = Loader::spec(&cfg.blocklist, None, true)?;
            blocklist::compile(&spec, &out)?;
            let l = Blocklist::open(&out, false)?;
            (l, Some(TempDir(dir)))
        }
    };
    let mut any_blocked = false;
    let policy = Policy::from_config(&cfg);
    for raw in names {
        let (line, blocked, _) =
            fanzha::ctl::commands::explain(&list, &policy, raw).map_err(anyhow::Error::msg)?;
        any_blocked |= blocked;
        println!("{line}");
    }
    Ok(if any_blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    /// The man pages shipped in the .deb are what the commands and the config
    /// structs say now.
    #[test]
    fn the_shipped_man_pages_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        for (name, page) in super::man_pages().unwrap() {
            let shipped = std::fs::read(dir.join(name)).unwrap_or_default();
            assert!(
                shipped == page,
                "man/{name} is stale: run `cargo run -q -- man man` and commit it"
            );
        }
    }
}
