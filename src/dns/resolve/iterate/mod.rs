//! fanzha's own iterative resolver, modelled on Unbound's iterator.
//!
//! A resolution starts at the closest zone cut it knows (the root hints at first)
//! and asks that zone's servers. Query names are minimised (RFC 9156, relaxed): a
//! parent zone is asked for one more label at a time, with type A, until a referral
//! or an answer says where the name lives; an error or NXDOMAIN for a minimised name
//! sends the full name instead. Every response is scrubbed ([`scrub`]) against the
//! zone of the server that sent it. A server that is lame, refuses, fails or stays
//! silent costs one try: the next server of the zone is asked ([`infra`] orders them
//! by smoothed RTT and remembers lame and dead ones). Name servers without glue are
//! resolved only when the servers with addresses are used up, a few at a time in
//! parallel, and their failure fails nothing but that server. CNAME and DNAME chains
//! are followed across zones, and the whole chain is returned with the final
//! answer, positive or negative. Identical lookups in flight are merged.

pub mod cache;
pub mod handle;
pub mod inflight;
pub mod infra;
pub mod scrub;
pub mod transport;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;
use prometheus::IntCounterVec;

use cache::{Delegation, Expiring, Key, NameKey, aged, ttl_of};
use inflight::InFlight;
use infra::Infra;
use scrub::Kind;
use transport::ExchangeError;

/// Longest CNAME/DNAME chain across zones (Unbound's MAX_RESTART_COUNT is 11).
const MAX_CHAIN: usize = 12;
/// Most referrals (and minimisation steps) in one lookup.
const MAX_STEPS: usize = 40;
/// Most labels added one at a time by minimisation (Unbound's MAX_MINIMISE_COUNT).
const MAX_MINIMISE: u8 = 10;
/// Most queries sent upstream for one client query, glue lookups included.
const MAX_SENT: u32 = 64;
/// Deepest nesting of name-server address lookups.
const MAX_DEPTH: u8 = 4;
/// Name servers without glue resolved at once.
const GLUELESS_AT_ONCE: usize = 3;
/// Upstream sockets open at once (Unbound's outgoing-range): past it an exchange
/// waits for one, within its timeout, so a flood of names cannot open a socket each.
pub const MAX_SOCKETS: usize = 4096;

/// What one lookup of a name and type found.
#[derive(Debug, Clone)]
pub enum Step {
    /// The records of the type, after the chain that led to them; and, when
    /// validating, the proofs for the authority section: the NSEC/NSEC3 records (and
    /// their signatures) showing that no closer name exists than a wildcard that made
    /// an answer (RFC 4035 §5.3.4).
    Answer(Vec<Record>, Vec<Record>),
    /// A chain to follow, where it leads, and its wildcard proofs (as above).
    Alias(Vec<Record>, Name, Vec<Record>),
    /// The name (or the chain's end) does not exist; the chain, and the authority
    /// section: the zone's SOA (first) and, when validating, the NSEC/NSEC3 proofs
    /// and signatures.
    NxDomain(Vec<Record>, Vec<Record>),
    /// No records of the type; the chain and the authority section, as above.
    NoData(Vec<Record>, Vec<Record>),
    /// No server gave a usable answer.
    Fail(String),
}

/// The settings of the iterator.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Root server addresses.
    pub roots: Vec<IpAddr>,
    /// Port of name servers in these networks (labs and tests); 53 elsewhere.
    pub ports: Vec<(IpNet, u16)>,
    /// Addresses never asked (loopback, private ranges…)…
    pub deny: Vec<IpNet>,
    /// …unless they are in these.
    pub allow: Vec<IpNet>,
    /// Timeout of one exchange.
    pub timeout: Duration,
    /// Entries of the answer cache.
    pub cache_entries: usize,
    /// Bytes for the iterator's caches: a third for zone cuts, the rest for answers.
    pub cache_bytes: usize,
    /// Minimise query names (RFC 9156, relaxed).
    pub minimise: bool,
}

/// How long a failed lookup is remembered, so that a name whose servers are dead or
/// broken is not asked again by every client that wants it (Unbound keeps a
/// SERVFAIL for the same NORR_TTL of 5 s).
const FAIL_TTL: Duration = Duration::from_secs(5);
/// How long a resolution may take when the caller set no deadline.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// The least time worth starting an exchange with: below it, the server is not asked.
const MIN_EXCHANGE: Duration = Duration::from_millis(10);

/// What one client query may spend upstream: queries (shared by its glue lookups and
/// by every question its validator sends on its behalf, such as a DS walk) and time.
#[derive(Clone)]
pub struct Budget {
    sent: Arc<AtomicU32>,
    deadline: Instant,
}

tokio::task_local! {
    /// The budget of the client query this task works for (see [`Budget::scope`]).
    static QUERY: Budget;
}

impl Budget {
    /// A fresh budget that ends at `deadline`.
    pub fn until(deadline: Instant) -> Budget {
        Budget {
            sent: Arc::default(),
            deadline,
        }
    }

    /// Run `f` for one client query: every resolution it starts on this task (the
    /// validator's included) draws on this budget instead of a fresh one each.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        QUERY.scope(self, f).await
    }

    /// The budget of the client query running on this task, or a fresh one.
    fn current() -> Budget {
        QUERY
            .try_with(Budget::clone)
            .unwrap_or_else(|_| Budget::until(Instant::now() + DEFAULT_DEADLINE))
    }

    fn take(&self) -> bool {
        self.sent.fetch_add(1, Ordering::Relaxed) < MAX_SENT
    }

    /// Queries sent so far.
    pub fn spent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed).min(MAX_SENT)
    }

    /// Time left before the deadline.
    fn left(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }
}

/// A question to a zone's servers: the zone, the name and the type.
type AskKey = (NameKey, NameKey, RecordType);

/// What asking a zone's servers gave: the kind of answer and the message, or why
/// no server gave a usable one.
type Asked = Result<(Kind, Message), String>;

/// What a lookup or a question is waiting for, up the chain of callers (a linked
/// list on the stack). A name server's address lookup may need, further down, the
/// very lookup or question that is waiting for it: waiting for it in flight would
/// wait for itself, so it is a dependency loop and fails at once (as in Unbound).
#[derive(Clone, Copy, Default)]
struct Trail<'a>(Option<&'a Link<'a>>);

struct Link<'a> {
    held: Held<'a>,
    up: Trail<'a>,
}

enum Held<'a> {
    Lookup(&'a Key),
    Ask(&'a AskKey),
}

impl<'a> Trail<'a> {
    fn holds(&self, f: impl Fn(&Held<'_>) -> bool) -> bool {
        let mut at = self.0;
        while let Some(l) = at {
            if f(&l.held) {
                return true;
            }
            at = l.up.0;
        }
        false
    }
}

/// What every step of one client query carries: its budget of upstream queries,
/// what its callers wait for, and how deep in name-server lookups it is.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    budget: &'a Budget,
    trail: Trail<'a>,
    depth: u8,
}

impl<'a> Ctx<'a> {
    /// The context below `link`.
    fn under(self, link: &'a Link<'a>) -> Ctx<'a> {
        Ctx {
            trail: Trail(Some(link)),
            ..self
        }
    }
}

/// The iterative resolver.
pub struct Recursor {
    s: Settings,
    infra: Infra,
    answers: Expiring<Key, Step>,
    zones: Expiring<NameKey, Delegation>,
    /// Lookups in flight, by name and type.
    inflight: InFlight<Key, Step>,
    /// Questions in flight to a zone's servers, by zone, name and type.
    asking: InFlight<AskKey, Asked>,
    /// Upstream exchanges by result (`fanzha_upstream_queries_total`).
    upstream: IntCounterVec,
    /// Permits for upstream sockets.
    sockets: tokio::sync::Semaphore,
    /// Whether the root servers were asked, whether one ever answered, and whether
    /// their silence was logged.
    roots: [AtomicBool; 3],
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Recursor {
    /// An iterator with `settings`, counting its upstream exchanges in `upstream`
    /// (one label, the result).
    pub fn new(settings: Settings, upstream: IntCounterVec) -> Recursor {
        // The engine keeps every client answer (`cache_size` of them); the iterator
        // needs its own answers mostly for what a resolution is made of (name-server
        // addresses, chain links, empty non-terminals), so a quarter is enough.
        Recursor {
            answers: Expiring::new(
                (settings.cache_entries / 4).max(1024),
                settings.cache_bytes / 3 * 2,
                cache::step_weight,
            ),
            zones: Expiring::new(
                (settings.cache_entries / 8).max(1024),
                settings.cache_bytes / 3,
                cache::delegation_weight,
            ),
            s: settings,
            infra: Infra::default(),
            inflight: InFlight::default(),
            asking: InFlight::default(),
            upstream,
            sockets: tokio::sync::Semaphore::new(MAX_SOCKETS),
            roots: Default::default(),
        }
    }

    /// The root servers were asked and none has ever answered: nothing outside
    /// fanzha's own data can be resolved (a network that blocks outgoing DNS).
    pub fn roots_silent(&self) -> bool {
        let [asked, heard, _] = &self.roots;
        asked.load(Ordering::Relaxed) && !heard.load(Ordering::Relaxed)
    }

    /// Say once, loudly, that no root server answers, and what to do.
    pub fn warn_roots_silent(&self) {
        if !self.roots[2].swap(true, Ordering::Relaxed) {
            tracing::error!(
                roots = self.s.roots.len(),
                "no root server has answered: names outside fanzha's lists and local data \
                 cannot be resolved (SERVFAIL, EDE 22). If this network blocks outgoing DNS, \
                 set [resolver] mode = \"forward\" with the upstreams it allows; else open \
                 UDP and TCP port 53 to the Internet"
            );
        }
    }

    /// A root server answered: if their silence was logged, say it is over.
    fn root_heard(&self) {
        if !self.roots[1].swap(true, Ordering::Relaxed) && self.roots[2].load(Ordering::Relaxed) {
            tracing::info!("a root server answers: resolving again");
        }
    }

    /// Resolve `name`/`qtype` from the roots, following aliases across zones: the
    /// whole chain comes with the final step (never [`Step::Alias`]).
    /// Draws on the budget of the client query running on this task
    /// ([`Budget::scope`]), or on a fresh one.
    pub async fn resolve(self: &Arc<Self>, name: Name, qtype: RecordType) -> Step {
        let budget = Budget::current();
        let cx = Ctx {
            budget: &budget,
            trail: Trail::default(),
            depth: 0,
        };
        self.follow(&name.to_lowercase(), qtype, cx).await
    }

    /// Forget the cached answer for `name`/`qtype`, so that the next resolution asks
    /// its servers (a prefetch refreshes an answer this way).
    pub fn forget(&self, name: &Name, qtype: RecordType) {
        self.answers
            .expire(&(NameKey::new(name), qtype), Instant::now());
    }

    /// Drop every cached answer and zone cut at or below `zone` (all of them for
    /// `None`), for `fanzha ctl flush-cache`; how many went. What is known of the
    /// servers themselves (round-trip times, lameness) stays.
    pub fn flush(&self, zone: Option<&Name>) -> usize {
        let under = |n: &Name| zone.is_none_or(|z| z.zone_of(n));
        self.answers.forget(|(n, _)| under(&n.name())) + self.zones.forget(|n| under(&n.name()))
    }

    /// Look `name`/`qtype` up and follow its aliases, within the budget.
    async fn follow(self: &Arc<Self>, name: &Name, qtype: RecordType, cx: Ctx<'_>) -> Step {
        let mut chain: Vec<Record> = Vec::new();
        let mut proofs: Vec<Record> = Vec::new();
        let mut cur = name.clone();
        let mut seen = vec![cur.clone()];
        for _ in 0..MAX_CHAIN {
            let (rs, target, ps) = match self.lookup(&cur, qtype, cx).await {
                Step::Alias(rs, target, ps) => (rs, target, ps),
                done => return after(chain, proofs, done),
            };
            chain.extend(rs);
            proofs.extend(ps);
            if seen.contains(&target) {
                return Step::Fail(format!("CNAME loop at {target}"));
            }
            seen.push(target.clone());
            cur = target;
        }
        Step::Fail(format!("CNAME chain from {name} longer than {MAX_CHAIN}"))
    }

    /// One name and type: from the cache, from a lookup already in flight, or asked.
    fn lookup<'a>(
        self: &'a Arc<Self>,
        name: &'a Name,
        qtype: RecordType,
        cx: Ctx<'a>,
    ) -> Boxed<'a, Step> {
        Box::pin(async move {
            let key = (NameKey::new(name), qtype);
            if let Some((step, left)) = self.answers.get(&key, Instant::now()) {
                return aged(&step, left);
            }
            if cx
                .trail
                .holds(|h| matches!(h, Held::Lookup(k) if **k == key))
            {
                return Step::Fail(format!("{name} {qtype} depends on itself"));
            }
            let link = Link {
                held: Held::Lookup(&key),
                up: cx.trail,
            };
            let cx = cx.under(&link);
            let step = self
                .inflight
                .run(key.clone(), || self.iterate(name, qtype, cx))
                .await;
            if matches!(step, Step::Fail(_)) {
                self.answers
                    .put(key, step.clone(), FAIL_TTL, Instant::now());
            }
            step
        })
    }

    /// The closest zone cut above `name` that is cached, or the root. A DS record
    /// lives in the parent of its zone, so for DS the cut at `name` itself is passed.
    /// Shared with the cache: a resolution copies it only to add name-server
    /// addresses it found.
    fn closest(&self, name: &Name, qtype: RecordType, now: Instant) -> Arc<Delegation> {
        let top = name.num_labels() - u8::from(qtype == RecordType::DS && !name.is_root());
        for k in (1..=top).rev() {
            if let Some((d, _)) = self.zones.get(&NameKey::suffix(name, k as usize), now) {
                return d;
            }
        }
        Arc::new(Delegation {
            zone: Name::root(),
            ns: vec![],
            addrs: self.s.roots.iter().map(|ip| (Name::root(), *ip)).collect(),
        })
    }

    /// Descend from the closest known cut to the zone of `name` and ask it.
    async fn iterate(self: &Arc<Self>, name: &Name, qtype: RecordType, cx: Ctx<'_>) -> Step {
        let mut zone = self.closest(name, qtype, Instant::now());
        let mut minimise = self.s.minimise;
        let mut labels = zone.zone.num_labels() + 1;
        for _ in 0..MAX_STEPS {
            let minimised = minimise
                && labels < name.num_labels()
                && labels - zone.zone.num_labels() <= MAX_MINIMISE;
            let (qn, qt) = if minimised {
                (cache::suffix(name, labels as usize), RecordType::A)
            } else {
                (name.clone(), qtype)
            };
            let qk = NameKey::new(&qn);
            if minimised {
                // A minimised name already known to exist below this cut (an answer
                // or an empty non-terminal) needs no query.
                let known = self.answers.get(&(qk.clone(), qt), Instant::now());
                if let Some((step, _)) = known
                    && matches!(*step, Step::Answer(..) | Step::NoData(..))
                {
                    labels += 1;
                    continue;
                }
            }
            // The same question to the same zone from another resolution is shared.
            let key: AskKey = (NameKey::new(&zone.zone), qk.clone(), qt);
            let asked = if cx.trail.holds(|h| matches!(h, Held::Ask(k) if **k == key)) {
                Err(format!("asking {} about {qn} depends on itself", zone.zone))
            } else {
                let link = Link {
                    held: Held::Ask(&key),
                    up: cx.trail,
                };
                let cx = cx.under(&link);
                self.asking
                    .run(key.clone(), || self.ask(&mut zone, &qn, qt, cx))
                    .await
            };
            let (kind, msg) = match asked {
                Ok(k) => k,
                Err(_) if minimised => {
                    minimise = false;
                    continue;
                }
                Err(why) => return Step::Fail(why),
            };
            match kind {
                Kind::Referral {
                    zone: child,
                    ns,
                    glue,
                    ttl,
                } => {
                    let d = self.remember_cut(child, ns, glue, ttl);
                    labels = d.zone.num_labels() + 1;
                    zone = d;
                }
                // No cut at the minimised name: remember it, and one label more.
                kind @ (Kind::NoData { .. } | Kind::Answer { .. }) if minimised => {
                    // Kept with its signatures and proofs: a later lookup of this
                    // very name and type (a validator's) is served this entry.
                    let step = step_from_reply(kind, &msg, &zone.zone);
                    let ttl = ttl_of(&step);
                    self.answers.put((qk, qt), step, ttl, Instant::now());
                    labels += 1;
                }
                // Relaxed minimisation: anything else, ask for the full name.
                _ if minimised => minimise = false,
                kind => {
                    let step = step_from_reply(kind, &msg, &zone.zone);
                    self.answers.put(
                        // Not minimised: the name asked is the whole name.
                        (qk, qtype),
                        step.clone(),
                        ttl_of(&step),
                        Instant::now(),
                    );
                    return step;
                }
            }
        }
        Step::Fail(format!("no answer for {name} after {MAX_STEPS} referrals"))
    }

    /// Cache a zone cut from a referral, for its NS TTL (5 s to a day).
    fn remember_cut(
        &self,
        zone: Name,
        ns: Vec<Name>,
        addrs: Vec<(Name, IpAddr)>,
        ttl: u32,
    ) -> Arc<Delegation> {
        let key = NameKey::new(&zone);
        let d = Arc::new(Delegation { zone, ns, addrs });
        let ttl = Duration::from_secs(ttl.clamp(5, 86_400) as u64);
        self.zones.put_shared(key, d.clone(), ttl, Instant::now());
        d
    }

    /// Ask the servers of `zone` in turn until one answers usefully: lame, refusing,
    /// failing and silent servers are passed over (and remembered). Servers without
    /// glue are resolved when the others are used up.
    async fn ask(
        self: &Arc<Self>,
        zone: &mut Arc<Delegation>,
        qn: &Name,
        qt: RecordType,
        cx: Ctx<'_>,
    ) -> Asked {
        let mut tried: Vec<IpAddr> = Vec::new();
        let mut glueless_done = false;
        loop {
            let fresh: Vec<IpAddr> = zone
                .addrs
                .iter()
                .map(|(_, ip)| *ip)
                .filter(|ip| !tried.contains(ip) && self.allowed(*ip))
                .collect();
            let order = self.infra.order(&fresh, &zone.zone, Instant::now());
            if order.is_empty() {
                if !glueless_done {
                    glueless_done = true;
                    if self.resolve_glueless(zone, cx).await {
                        continue;
                    }
                }
                return Err(format!(
                    "no name server of {} gave a usable answer",
                    zone.zone
                ));
            }
            for ip in order {
                tried.push(ip);
                // No exchange is started that the deadline would cut off: the
                // resolution ends here, and cleanly, instead of being dropped.
                let left = cx.budget.left(Instant::now());
                let need = self.infra.rtt(ip).unwrap_or(MIN_EXCHANGE).max(MIN_EXCHANGE);
                if left < need.min(self.s.timeout) {
                    return Err(format!("out of time asking {}", zone.zone));
                }
                if !cx.budget.take() {
                    return Err("too many upstream queries for one question".into());
                }
                let root = zone.zone.is_root();
                if root {
                    self.roots[0].store(true, Ordering::Relaxed);
                }
                let Some(msg) = self.exchange(ip, &zone.zone, qn, qt, left).await else {
                    continue;
                };
                if root {
                    self.root_heard();
                }
                let kind = scrub::classify(&msg, &zone.zone, qn, qt);
                let now = Instant::now();
                match &kind {
                    Kind::Lame => {
                        self.count("lame");
                        self.infra.set_lame(ip, &zone.zone, now);
                    }
                    Kind::Error(rc) => {
                        let label = match *rc {
                            ResponseCode::Refused => "refused",
                            ResponseCode::ServFail => "servfail",
                            _ => "error",
                        };
                        self.count(label);
                        if *rc == ResponseCode::Refused {
                            self.infra.set_lame(ip, &zone.zone, now);
                        } else {
                            self.infra.failed(ip, now);
                        }
                        tracing::debug!(server = %ip, zone = %zone.zone, rcode = %rc, "name server error; asking another");
                    }
                    Kind::Referral {
                        zone: child,
                        ns,
                        glue,
                        ttl,
                    } if scrub::refers_back(&kind, ip) => {
                        // Kept, as any cut: the next name below it finds the server
                        // lame there and asks nobody.
                        self.count("lame");
                        self.infra.set_lame(ip, child, now);
                        self.infra.handed_back(ip, &zone.zone, now);
                        tracing::debug!(server = %ip, zone = %zone.zone, child = %child, "referral back to the same server: lame at the child");
                        self.remember_cut(child.clone(), ns.clone(), glue.clone(), *ttl);
                    }
                    _ => {
                        self.count("answer");
                        self.infra.served(ip, &zone.zone);
                        return Ok((kind, msg));
                    }
                }
            }
        }
    }

    /// Resolve the addresses of a few of the zone's name servers that have none,
    /// in parallel; true when any address was found (added to `zone` and its cache
    /// entry). A failure here only leaves that server out.
    async fn resolve_glueless(self: &Arc<Self>, zone: &mut Arc<Delegation>, cx: Ctx<'_>) -> bool {
        if cx.depth >= MAX_DEPTH {
            return false;
        }
        let missing: Vec<Name> = zone
            .ns
            .iter()
            .filter(|n| !zone.addrs.iter().any(|(a, _)| a == *n))
            // A server inside the zone without glue cannot be found through it.
            .filter(|n| !zone.zone.zone_of(n))
            .take(GLUELESS_AT_ONCE)
            .cloned()
            .collect();
        if missing.is_empty() {
            return false;
        }
        let below = Ctx {
            depth: cx.depth + 1,
            ..cx
        };
        let lookups = missing.into_iter().map(|ns| async move {
            let ips = self.addresses(&ns, below).await;
            (ns, ips)
        });
        let mut found = false;
        for (ns, ips) in futures_util::future::join_all(lookups).await {
            for ip in ips {
                if !zone.addrs.contains(&(ns.clone(), ip)) {
                    Arc::make_mut(zone).addrs.push((ns.clone(), ip));
                    found = true;
                }
            }
        }
        if found {
            let now = Instant::now();
            let key = NameKey::new(&zone.zone);
            if let Some((_, left)) = self.zones.get(&key, now) {
                self.zones.put_shared(key, zone.clone(), left, now);
            }
        }
        found
    }

    /// The IPv4 addresses of a name server (its IPv6 ones when it has none),
    /// following aliases.
    async fn addresses(self: &Arc<Self>, ns: &Name, cx: Ctx<'_>) -> Vec<IpAddr> {
        for t in [RecordType::A, RecordType::AAAA] {
            let Step::Answer(rs, _) = self.follow(ns, t, cx).await else {
                continue;
            };
            let ips: Vec<IpAddr> = rs
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            if !ips.is_empty() {
                return ips;
            }
        }
        Vec::new()
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.s.allow.iter().any(|n| n.contains(&ip)) || !self.s.deny.iter().any(|n| n.contains(&ip))
    }

    fn count(&self, result: &str) {
        self.upstream.with_label_values(&[result]).inc();
    }

    /// One query to one server: UDP, then TCP when the reply is truncated or too
    /// large; without EDNS when the server does not understand it. `None` when no
    /// usable message came back (the server's marks are updated).
    /// Waits no longer than `left`.
    async fn exchange(
        &self,
        ip: IpAddr,
        zone: &Name,
        qn: &Name,
        qt: RecordType,
        left: Duration,
    ) -> Option<Message> {
        let port = self
            .s
            .ports
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, p)| *p)
            .unwrap_or(53);
        let addr = SocketAddr::new(ip, port);
        let timeout = self.s.timeout.min(left);
        let Ok(Ok(_socket)) = tokio::time::timeout(timeout, self.sockets.acquire()).await else {
            self.count("busy");
            return None;
        };
        let mut edns = !self.infra.no_edns(ip, Instant::now());
        for _ in 0..2 {
            // DO always, as Unbound asks: what the servers signed is kept and passed
            // to clients that set DO, whether or not fanzha validates.
            let out = transport::query(qn, qt, edns, true);
            let t0 = Instant::now();
            let res = match out.udp(addr, timeout).await {
                Err(ExchangeError::Truncated) => {
                    self.count("truncated");
                    if !self.infra.follow_truncated(ip, zone, t0) {
                        // It hands this zone's names back to itself: over TCP it
                        // would only say so again, at many times the cost.
                        self.count("truncated_not_followed");
                        return None;
                    }
                    out.tcp(addr, timeout).await
                }
                other => other,
            };
            let now = Instant::now();
            match res {
                Ok(m) => {
                    self.infra.answered(ip, now - t0, now);
                    let formerr = matches!(
                        m.metadata.response_code,
                        ResponseCode::FormErr | ResponseCode::NotImp
                    );
                    if edns && formerr && m.edns.is_none() {
                        // RFC 6891 §7: a server that does not know EDNS; ask again without.
                        self.infra.set_no_edns(ip, now);
                        edns = false;
                        continue;
                    }
                    return Some(m);
                }
                Err(ExchangeError::Timeout) => {
                    self.count("timeout");
                    self.infra.timed_out(ip, timeout, now);
                }
                Err(ExchangeError::Unreachable(e)) => {
                    self.count("unreachable");
                    tracing::debug!(server = %addr, error = %e, "name server unreachable");
                    self.infra.unreachable(ip, now);
                }
                Err(ExchangeError::Truncated) | Err(ExchangeError::Malformed(_)) => {
                    self.count("malformed");
                }
            }
            return None;
        }
        None
    }
}

/// `step` with `chain` (the aliases that led to it) in front of its records, and
/// the chain's wildcard proofs in its authority section.
fn after(mut chain: Vec<Record>, mut proofs: Vec<Record>, step: Step) -> Step {
    match step {
        Step::Answer(rs, ps) => {
            chain.extend(rs);
            proofs.extend(ps);
            Step::Answer(chain, proofs)
        }
        // The SOA stays first in the authority section.
        Step::NxDomain(rs, mut auth) => {
            chain.extend(rs);
            auth.extend(proofs);
            Step::NxDomain(chain, auth)
        }
        Step::NoData(rs, mut auth) => {
            chain.extend(rs);
            auth.extend(proofs);
            Step::NoData(chain, auth)
        }
        other => other,
    }
}

/// The first SOA record of a section.
pub fn soa_in(records: &[Record]) -> Option<&Record> {
    records.iter().find(|r| r.record_type() == RecordType::SOA)
}

/// The step a scrubbed reply `kind` makes (of `msg`, from a server of `zone`), with
/// the signatures and proofs the server sent: what goes into the answer cache.
pub fn step_from_reply(kind: Kind, msg: &Message, zone: &Name) -> Step {
    let mut step = step_of(kind);
    scrub::add_proofs(&mut step, msg, zone);
    step
}

/// The step a final (non-referral) answer makes.
fn step_of(kind: Kind) -> Step {
    match kind {
        Kind::Answer { mut chain, records } => {
            chain.extend(records);
            Step::Answer(chain, vec![])
        }
        Kind::Alias { chain, target } => Step::Alias(chain, target, vec![]),
        Kind::NxDomain { chain, soa } => Step::NxDomain(chain, soa.into_iter().collect()),
        Kind::NoData { chain, soa } => Step::NoData(chain, soa.into_iter().collect()),
        Kind::Referral { .. } | Kind::Lame | Kind::Error(_) => {
            Step::Fail("no usable answer".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::sync::atomic::AtomicUsize;

    /// A name server on loopback that refuses everything, counting the queries.
    fn refusing() -> (SocketAddr, Arc<AtomicUsize>) {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = sock.recv_from(&mut buf) {
                count.fetch_add(1, Ordering::SeqCst);
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80; // QR
                r[3] = (r[3] & 0xf0) | 5; // REFUSED
                let _ = sock.send_to(&r, peer);
            }
        });
        (addr, seen)
    }

    fn iterator(root: SocketAddr) -> Arc<Recursor> {
        let settings = Settings {
            roots: vec![root.ip()],
            ports: vec![(IpNet::from(root.ip()), root.port())],
            deny: vec![],
            allow: vec![],
            timeout: Duration::from_millis(300),
            cache_entries: 1000,
            cache_bytes: 1 << 20,
            minimise: true,
        };
        let upstream = IntCounterVec::new(prometheus::Opts::new("u", "u"), &["result"]).unwrap();
        Arc::new(Recursor::new(settings, upstream))
    }

    #[tokio::test]
    async fn one_client_query_has_one_budget_however_many_resolutions_it_starts() {
        let (root, seen) = refusing();
        let it = iterator(root);
        // As a validator does: many questions (a DS walk, DNSKEYs) for one query.
        let budget = Budget::until(Instant::now() + Duration::from_secs(10));
        let spent = budget.clone();
        budget
            .scope(async {
                for i in 0..100 {
                    let n = Name::from_str(&format!("n{i}.walk.test.")).unwrap();
                    assert!(matches!(it.resolve(n, RecordType::DS).await, Step::Fail(_)));
                }
            })
            .await;
        let sent = seen.load(Ordering::SeqCst);
        assert!(
            sent <= MAX_SENT as usize,
            "{sent} queries for one client query"
        );
        assert_eq!(spent.spent(), MAX_SENT);
        // Outside a scope, each resolution has a budget of its own.
        seen.store(0, Ordering::SeqCst);
        let n = Name::from_str("other.test.").unwrap();
        assert!(matches!(it.resolve(n, RecordType::A).await, Step::Fail(_)));
        assert!(seen.load(Ordering::SeqCst) > 0, "a fresh budget asks");
    }

    #[tokio::test]
    async fn a_resolution_ends_by_its_deadline_and_its_failure_is_kept_briefly() {
        // A server that never answers: the deadline, not the outer timeout, ends it.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let it = iterator(silent.local_addr().unwrap());
        let name = Name::from_str("slow.test.").unwrap();
        let t0 = Instant::now();
        let budget = Budget::until(t0 + Duration::from_millis(150));
        let step = budget.scope(it.resolve(name.clone(), RecordType::A)).await;
        assert!(matches!(step, Step::Fail(_)), "{step:?}");
        assert!(
            t0.elapsed() < Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
        assert!(it.inflight.is_empty() && it.asking.is_empty());
        // Asked again at once: the failure is remembered, nothing is sent.
        let t1 = Instant::now();
        let again = it.resolve(name, RecordType::A).await;
        assert!(matches!(again, Step::Fail(_)));
        assert!(t1.elapsed() < Duration::from_millis(50));
    }
}
