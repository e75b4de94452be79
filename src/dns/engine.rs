//! The per-query engine: every stage of [the pipeline](super) from admission to the
//! answer, shared by every listener. A listener hands a query in once
//! ([`Engine::receive`], or [`Engine::handle`] for a stream) and sends what comes
//! back; what a query gets, and how it is counted and logged, is decided here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::resolve::{Backend, BackendError, Resolved};
use super::stages::admit::RateLimiter;
use super::stages::answer;
use super::stages::cache::{AnswerCache, Lookup};
use super::stages::policy::{BlockInfo, Decision, Noted, Policy};
use super::wire::{self, Query, rcode};
use crate::alert::{AlertHit, Alerter, Decided};
use crate::blocklist::parse::{RpzAction, rpz_action};
use crate::blocklist::{Action, Blocklist, Handle, Verdict};
use crate::config::Config;
use crate::dnstap::{self, Tap};
use crate::limits::{Admission, ResolutionSlot};
use crate::metrics::{Metrics, Outcome};
use crate::places::{Asker, Places};
use crate::report::event::{Hit, Input};
use crate::report::pipeline::Reporter;

/// Everything a query needs; shared by every listener. Built once from the config,
/// its config-derived parts swapped by [`Engine::reload`].
pub struct Engine {
    policy: ArcSwap<Policy>,
    limiter: ArcSwap<RateLimiter>,
    places: Arc<ArcSwap<Places>>,
    lists: Arc<Handle>,
    backend: Backend,
    cache: AnswerCache,
    /// Longest a resolution may take before SERVFAIL.
    deadline: Duration,
    metrics: Arc<Metrics>,
    reporter: Option<Reporter>,
    /// Digests to places' workers (always there; idle while no place has a robot).
    alerter: Alerter,
    /// Resolutions in flight by client prefix.
    in_flight: Arc<Admission>,
    /// How long after expiry a cached answer may still be served when the
    /// resolution fails (RFC 8767); zero: never.
    serve_stale: Duration,
    /// Answers to refresh in the background, sent by the receive loop on a cache hit
    /// near expiry (`None`: prefetch off); taken by [`Engine::run_prefetch`].
    prefetch: Option<tokio::sync::mpsc::Sender<Refresh>>,
    prefetch_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Refresh>>>,
    /// The dnstap query log (`None`: off), swapped by a reload that changes
    /// `[dnstap]`.
    tap: ArcSwapOption<Tap>,
}

/// An answer to refresh: the query's packet, and the query parsed from it.
type Refresh = (Vec<u8>, Query);

/// Refreshes waiting at once; past it a hit near expiry is not refreshed early.
const PREFETCH_QUEUE: usize = 1024;
/// Refreshes resolving at once.
const PREFETCH_AT_ONCE: usize = 64;

impl Engine {
    /// The engine of `cfg`. `places` is shared with the reporter, so that one swap
    /// on reload reaches both; `reporter` is `None` when reporting is off.
    pub fn new(
        cfg: &Config,
        lists: Arc<Handle>,
        places: Arc<ArcSwap<Places>>,
        metrics: Arc<Metrics>,
        reporter: Option<Reporter>,
        alerter: Alerter,
        tap: Option<Tap>,
    ) -> Result<Engine, BackendError> {
        let r = &cfg.resolver;
        let (prefetch, prefetch_rx) = if cfg.cache.prefetch {
            let (tx, rx) = tokio::sync::mpsc::channel(PREFETCH_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Ok(Engine {
            policy: ArcSwap::from_pointee(Policy::from_config(cfg)),
            limiter: ArcSwap::from_pointee(RateLimiter::from_config(&cfg.server)),
            places,
            lists,
            backend: Backend::from_config(cfg, &metrics)?,
            // In forward mode the answer cache could have it all; it keeps its share.
            cache: AnswerCache::with_limits(
                r.cache_size as usize,
                super::resolve::answer_cache_bytes(r.cache_max_bytes),
            ),
            deadline: (r.timeout * 8).clamp(Duration::from_secs(2), Duration::from_secs(10)),
            metrics,
            reporter,
            alerter,
            in_flight: Arc::default(),
            serve_stale: cfg.cache.serve_stale,
            prefetch,
            prefetch_rx: std::sync::Mutex::new(prefetch_rx),
            tap: ArcSwapOption::from(tap.map(Arc::new)),
        })
    }

    /// Refresh the answers the receive loops ask for (cache hits near expiry), a few
    /// at a time, until shutdown. The clients already have their answers; this only
    /// puts a fresh one in the cache before the old one expires (Unbound's
    /// `prefetch`), so popular names never pay a miss. Returns at once when prefetch
    /// is off.
    pub async fn run_prefetch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let rx = self
            .prefetch_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut rx) = rx else { return };
        let slots = Arc::new(tokio::sync::Semaphore::new(PREFETCH_AT_ONCE));
        loop {
            let (packet, q) = tokio::select! {
                job = rx.recv() => match job { Some(j) => j, None => return },
                _ = shutdown.cancelled() => return,
            };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                me.refresh(&packet, &q).await;
            });
        }
    }

    /// Resolve `q` again and cache the answer; nobody is waiting for it, so a
    /// failure, or a chain to a blocked name, changes nothing and reports nothing.
    async fn refresh(&self, packet: &[u8], q: &Query) {
        let mut buf = Vec::with_capacity(512);
        let generation = self.lists.generation();
        let mut cacheable = true;
        let outcome = self
            .answer_into(packet, q, None, &mut buf, &mut cacheable)
            .await;
        self.metrics.prefetches.inc();
        if outcome == Outcome::Allowed && cacheable {
            self.cache.put(packet, q, generation, Instant::now(), &buf);
        }
    }

    /// A place for one more resolution from `client` (counted by its prefix), or
    /// `None`. Below `max_inflight` in all, every client gets one; at it, the
    /// heaviest client's oldest resolution is shed for a lighter client, and a
    /// client holding `max_inflight_per_client` or fewer is never shed ([`Admission`]):
    /// a flood of unique names from one client cannot take every slot from the
    /// others, nor the memory and sockets past the total.
    pub fn resolution_slot(&self, client: std::net::IpAddr) -> Option<ResolutionSlot> {
        let p = self.policy.load();
        let key = crate::limits::prefix(client, p.client_prefix.0, p.client_prefix.1);
        self.in_flight
            .take(key, p.max_inflight, p.max_inflight_per_client)
    }

    /// Whether `client` is inside `[server] acl` (TCP checks it before it gives a
    /// connection a slot).
    pub fn client_allowed(&self, client: std::net::IpAddr) -> bool {
        self.policy.load().acl.allows(client)
    }

    /// The place a DNS over TLS client named by its SNI (`<id>.<dns_name>`), or a DNS
    /// over HTTPS client by its path (`/dns-query/<id>`, as `Err(id)`), if known.
    pub fn named(&self, by: Result<&str, &str>) -> Option<u16> {
        let p = self.policy.load();
        match by {
            Ok(host) => p.named_by_host(host),
            Err(id) => p.places.named(id),
        }
    }

    /// Count encrypted DNS refused for naming no known place from outside the ACL.
    pub fn refused_unnamed(&self, transport: Transport) {
        self.metrics
            .unnamed_refused
            .with_label_values(&[transport.label()])
            .inc();
    }

    /// Whether what `sender` sends starts with a PROXY v2 header (`[server]
    /// proxy_from`): a load balancer speaking for its clients.
    pub fn proxied(&self, sender: IpAddr) -> bool {
        let p = self.policy.load();
        !p.proxy_from.is_empty() && p.proxy_from.allows(sender)
    }

    /// Take the policy, rate limit and places of a reloaded config. Listeners and
    /// the resolver change only on restart.
    pub fn reload(&self, cfg: &Config) {
        match self.backend.set_forward_zones(&cfg.resolver.forward_zones) {
            // Answers got through the old upstreams of a changed zone go with them.
            Ok(changed) => {
                for zone in &changed {
                    self.flush_cache(Some(zone));
                }
                if !changed.is_empty() {
                    tracing::info!(
                        zones = changed.len(),
                        "forward zones changed; their cached answers flushed"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "forward zones not reloaded; the zones in force stay")
            }
        }
        let mut policy = Policy::from_config(cfg);
        // The URL proxy's listeners change on restart only: DNS sends hosts to it
        // only if it ran from the start (its answer addresses and `unmanaged` do
        // change here).
        if self.policy.load().url.is_none() {
            policy.url = None;
        }
        self.policy.store(Arc::new(policy));
        self.limiter
            .store(Arc::new(RateLimiter::from_config(&cfg.server)));
        self.places.store(Arc::new(cfg.places.clone()));
    }

    /// Forget cached answers for `zone` and the names below it, or all of them
    /// (`None`): the answer cache and the iterator's records and zone cuts. Returns
    /// the entries dropped from each (`fanzha ctl flush-cache`).
    pub fn flush_cache(&self, zone: Option<&Name>) -> (usize, usize) {
        let wire = zone.map(super::stages::cache::wire_lower);
        (self.cache.flush(wire.as_deref()), self.backend.flush(zone))
    }

    /// The policy in force (category actions of the running config).
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Entries and bytes in the answer cache.
    pub fn cache_size(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.bytes())
    }

    /// The metrics the engine counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stages admit → block verdict → cache, with no I/O: any answer fanzha gives
    /// itself is written into `buf`, and only [`Decision::Resolve`] needs more.
    fn decide(
        &self,
        packet: &[u8],
        at: &Incoming,
        list: &Arc<Blocklist>,
        buf: &mut Vec<u8>,
    ) -> Decision {
        let (client, tcp) = (at.client.ip(), at.transport.stream());
        let now = Instant::now();
        let mut noted = Noted::default();
        let mut d = self.policy.load().decide_noting(
            packet,
            at.asker(),
            list,
            &self.limiter.load(),
            now,
            buf,
            &mut noted,
        );
        if let (Some(info), Decision::Resolve(q)) = (&noted.shadow, &d) {
            self.on_block(packet, q, at, list, info, None);
        }
        if let Some(why) = noted.unenforced {
            self.metrics.url_unenforced(why.as_str());
        }
        // Without recursion desired, only fanzha's own data answers (blocked names
        // and local records, above); the cache only for `allow_snoop` clients, as
        // Unbound's `allow` and `allow_snoop`: else anyone could probe the cache
        // for the sites residents visit. Never resolved.
        if let Decision::Resolve(q) = &d
            && q.flags & wire::flag::RD == 0
        {
            let snoop = self.policy.load().snoop.allows(client);
            let found = snoop
                && self
                    .cache
                    .get(packet, q, self.lists.generation(), now, buf)
                    .is_hit();
            if !found {
                wire::error_response(buf, packet, q.question_end, rcode::REFUSED, q.edns);
            }
            d = Decision::Answer(if found {
                Outcome::Allowed
            } else {
                Outcome::Refused
            });
        }
        // Cached answers are sent from the receive loop, like blocked ones. The list
        // was checked first: a cached name that is now blocked never gets here.
        if let Decision::Resolve(q) = &d {
            let found = self.cache.get(packet, q, self.lists.generation(), now, buf);
            if found.is_hit() {
                self.metrics.cache_hits.inc();
                if found == Lookup::HitRefresh
                    && let Some(tx) = &self.prefetch
                {
                    // A full queue: this one is not refreshed early, no harm done.
                    let _ = tx.try_send((packet.to_vec(), q.clone()));
                }
                if !tcp && buf.len() > q.udp_limit() {
                    wire::truncate(buf, q.question_end, q.edns);
                }
                d = Decision::Answer(Outcome::Allowed);
            }
        }
        // An RPZ rule's rpz-tcp-only. over TCP: not blocked, resolved as usual; its
        // rpz-drop.: counted and reported as blocked, and no answer sent.
        if let Decision::Block(q, info) = &d {
            match list.note(&info.hit).and_then(rpz_action) {
                Some(RpzAction::TcpOnly) if tcp => d = Decision::Resolve(q.clone()),
                Some(RpzAction::Drop) => {
                    self.metrics.query(Outcome::Blocked);
                    self.on_block(packet, q, at, list, info, None);
                    buf.clear();
                    return Decision::Drop(Outcome::Blocked);
                }
                _ => {}
            }
        }
        match &d {
            Decision::Answer(o) | Decision::Drop(o) => self.metrics.query(*o),
            Decision::Block(q, info) => {
                self.metrics.query(Outcome::Blocked);
                self.on_block(packet, q, at, list, info, None);
            }
            Decision::Resolve(_) => {}
        }
        d
    }

    /// The last stage of every blocked query, by name or by CNAME: the `blocked`
    /// metric by category and street, and the hit event for the platform (never
    /// waits). `via` is the CNAME target that matched, when it was not the query.
    /// A shadow hit (`info.action` is shadow) is counted by category and list in
    /// the shadow metric instead, and reported with action "shadow".
    fn on_block(
        &self,
        packet: &[u8],
        q: &Query,
        at: &Incoming,
        list: &Arc<Blocklist>,
        info: &BlockInfo,
        via: Option<&Name>,
    ) {
        let shadow = info.action == Action::Shadow;
        let policy = self.policy.load();
        if shadow {
            let from = list.list(&Verdict::Block(info.hit));
            self.metrics
                .shadow_hits
                .with_label_values(&[
                    list.category(&info.hit),
                    from.map_or("", |l| l.name.as_str()),
                ])
                .inc();
        } else {
            let place = policy.places.of(at.asker());
            let community = if policy.community_label {
                place.community.as_str()
            } else {
                ""
            };
            self.metrics
                .blocked
                .with_label_values(&[list.category(&info.hit), &place.street, community])
                .inc();
        }
        let top = if shadow {
            &self.metrics.top_shadow
        } else {
            &self.metrics.top_blocked
        };
        // The rule is a suffix of the name that matched: the query or the CNAME target.
        let target = via.map(|t| t.to_ascii().to_ascii_lowercase());
        let mut buf = [0u8; 256];
        let rule = match &target {
            None => q.suffix_lower(packet, info.hit.depth as usize, &mut buf),
            Some(t) => Some(info.hit.rule(t)),
        };
        if let Some(rule) = rule {
            top.count(rule);
        }
        // Shadow hits are a trial: no worker is alerted for them.
        if !shadow && policy.places.has_alerts() {
            self.alerter.send(AlertHit {
                client: at.asker(),
                by: Decided::Listed(list.clone(), info.hit),
                rule: rule.map_or(info.hit.value, |r| xxhash_rust::xxh3::xxh3_64(r.as_bytes())),
            });
        }
        let Some(r) = &self.reporter else { return };
        let name = q.name_lower(packet);
        let rule = match &target {
            None => info.hit.rule(&name).to_string(),
            Some(t) => info.hit.rule(t).to_string(),
        };
        r.send(Input::Hit(Box::new(Hit {
            client: at.asker(),
            via: at.transport.via(),
            name,
            qtype: q.qtype,
            list: list.clone(),
            hit: info.hit,
            rule,
            action: info.action.as_str(),
            time: SystemTime::now(),
        })));
    }

    /// Stages resolve → CNAME re-check → answer, for an admitted query; the answer
    /// is cached when it came from the resolver and truncated to fit UDP.
    pub(super) async fn answer(
        &self,
        packet: &[u8],
        q: &Query,
        at: &Incoming,
    ) -> (Vec<u8>, Outcome) {
        let tcp = at.transport.stream();
        let mut buf = Vec::with_capacity(512);
        let generation = self.lists.generation();
        let mut cacheable = true;
        let mut outcome = self
            .answer_into(packet, q, Some(at), &mut buf, &mut cacheable)
            .await;
        if outcome == Outcome::Allowed && cacheable {
            self.cache.put(packet, q, generation, Instant::now(), &buf);
        } else if outcome == Outcome::Servfail
            && !self.serve_stale.is_zero()
            && self.cache.get_stale(
                packet,
                q,
                generation,
                Instant::now(),
                self.serve_stale,
                &mut buf,
            )
        {
            // RFC 8767: an expired answer, TTL 30, beats SERVFAIL for a resident.
            self.metrics.stale_answers.inc();
            outcome = Outcome::Allowed;
        }
        self.metrics.query(outcome);
        if !tcp && buf.len() > q.udp_limit() {
            wire::truncate(&mut buf, q.question_end, q.edns);
        }
        (buf, outcome)
    }

    /// Resolve and write the answer. `client` is who asked (`None`: a prefetch,
    /// which reports no hit and asks afresh, past the resolver's own cache).
    /// `cacheable` is cleared when the answer holds a listed CNAME target that the
    /// client's place spares: another place may have to get it blocked.
    async fn answer_into(
        &self,
        packet: &[u8],
        q: &Query,
        client: Option<&Incoming>,
        buf: &mut Vec<u8>,
        cacheable: &mut bool,
    ) -> Outcome {
        // A plain query (the question and at most an OPT record, as parse_query read
        // them) needs no second decoding; anything more is decoded by hickory as
        // before, which refuses what it cannot read.
        let plain = packet[6..10] == [0; 4]
            && match u16::from_be_bytes([packet[10], packet[11]]) {
                0 => true,
                1 => q.edns.is_some(),
                _ => false,
            };
        let req = if plain { None } else { answer::request(packet) };
        let name = match &req {
            Some(m) => Some(m.queries[0].name().clone()),
            None if plain => wire::records::question_name(packet, q.qname_end),
            None => None,
        };
        let Some(name) = name else {
            wire::error_response(buf, packet, q.question_end, rcode::FORMERR, q.edns);
            return Outcome::Malformed;
        };
        let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
        let mut resolved = self
            .backend
            .resolve(
                name.to_lowercase(),
                RecordType::from(q.qtype),
                q.flags & answer::FLAG_CD != 0,
                client.is_none(),
                self.deadline,
            )
            .await;
        if let Resolved::Failed(why) = &resolved {
            self.metrics
                .resolution_failures
                .with_label_values(&[why.label()])
                .inc();
        }
        if !dnssec_ok {
            answer::strip_dnssec(&mut resolved, q.qtype);
        }
        match self.block_by_cname(packet, q, client, &resolved, buf) {
            Cname::Blocked => return Outcome::BlockedCname,
            Cname::Spared => *cacheable = false,
            Cname::Clear => {}
        }
        answer::resolved(buf, packet, q, req, &resolved, dnssec_ok)
    }

    /// The CNAME re-check: a chain through a blocked name is answered as blocked
    /// (the block answer written into `buf`). A listed target whose action is
    /// shadow or off (its list's, or the client's place's) does not block; a
    /// shadow one is counted and reported.
    fn block_by_cname(
        &self,
        packet: &[u8],
        q: &Query,
        client: Option<&Incoming>,
        resolved: &Resolved,
        buf: &mut Vec<u8>,
    ) -> Cname {
        let chain: &[Record] = match resolved {
            Resolved::Answer { answers, .. } | Resolved::Negative { answers, .. } => answers,
            Resolved::Failed(_) => &[],
        };
        if chain.is_empty() {
            return Cname::Clear;
        }
        let mut seen = Cname::Clear;
        let list = self.lists.load_full();
        for r in chain {
            let RData::CNAME(c) = &r.data else { continue };
            let target = &c.0;
            let Verdict::Block(hit) =
                list.lookup_labels(target.iter().rev(), target.num_labels() as usize)
            else {
                continue;
            };
            let policy = self.policy.load();
            let info = BlockInfo {
                hit,
                action: policy.action_for(&list, &hit, client.map(Incoming::asker)),
            };
            if !info.action.blocks() {
                if info.action == Action::Shadow
                    && let Some(client) = client
                {
                    self.on_block(packet, q, client, &list, &info, Some(target));
                }
                seen = Cname::Spared;
                continue;
            }
            let soa_owner = wire::HEADER_LEN;
            (policy.sinkhole).block(buf, packet, q, &list, &info.hit, info.action, soa_owner);
            if let Some(client) = client {
                self.on_block(packet, q, client, &list, &info, Some(target));
            }
            return Cname::Blocked;
        }
        seen
    }

    /// The stages that need no I/O, for one query from any listener: what to send
    /// is written into `buf` ([`Reply::Send`]), or the query is to be resolved
    /// ([`Reply::Resolve`]: hand it to [`Engine::resolve`] in a task of its own).
    /// Counted and logged to dnstap here, whatever the transport; its latency once
    /// it is sent ([`Engine::answered`]).
    pub fn receive(&self, packet: &[u8], at: &Incoming, buf: &mut Vec<u8>) -> Reply {
        // A datagram listener counts its batch at once ([`Engine::received`]).
        if at.transport != Transport::Udp {
            self.metrics.received_over(at.transport.index(), 1);
        }
        let list = self.lists.load();
        match self.decide(packet, at, &list, buf) {
            Decision::Answer(_) => {
                self.tap(at, packet, Some(buf), &list, Blocked::No);
                Reply::Send
            }
            Decision::Block(q, info) => {
                self.tap(at, packet, Some(buf), &list, Blocked::Rule(&q, &info));
                Reply::Send
            }
            Decision::Drop(_) => {
                self.tap(at, packet, None, &list, Blocked::No);
                Reply::Nothing
            }
            Decision::Resolve(q) => match self.resolution_slot(at.client.ip()) {
                Some(slot) => Reply::Resolve(Box::new(Pending { q, slot })),
                None => {
                    // At the cap, and this client is the heaviest: memory and
                    // sockets must not grow without bound. SERVFAIL at once.
                    self.servfail_now(buf, packet, &q);
                    self.metrics.overload.inc();
                    self.tap(at, packet, Some(buf), &list, Blocked::No);
                    Reply::Send
                }
            },
        }
    }

    /// `n` queries came over `transport` (a datagram listener's batch).
    pub fn received(&self, transport: Transport, n: u64) {
        self.metrics.received_over(transport.index(), n);
    }

    /// SERVFAIL without resolving (no room among the resolutions in flight),
    /// counted.
    fn servfail_now(&self, buf: &mut Vec<u8>, packet: &[u8], q: &Query) {
        wire::error_response(buf, packet, q.question_end, rcode::SERVFAIL, q.edns);
        self.metrics.query(Outcome::Servfail);
    }

    /// `n` answers to queries received at `start` are sent: their latency. A
    /// datagram listener says so once per batch, after the batch's `sendmmsg`.
    pub fn answered(&self, start: Instant, n: usize) {
        let took = start.elapsed().as_secs_f64();
        for _ in 0..n {
            self.metrics.query_duration.observe(took);
        }
    }

    /// Resolve a query [`Engine::receive`] handed back, and give the answer to send.
    /// `None`: nothing to send, because it was shed for another client's query at
    /// the cap (as Unbound drops a jostled query; the client asks again). Over a
    /// stream, where asking again is slow, a shed query gets SERVFAIL instead.
    pub async fn resolve(
        &self,
        packet: &[u8],
        at: &Incoming,
        pending: Box<Pending>,
    ) -> Option<Vec<u8>> {
        let Pending { q, slot } = *pending;
        let answered = tokio::select! {
            a = self.answer(packet, &q, at) => Some(a),
            _ = slot.jostled() => None,
        };
        drop(slot);
        let (resp, blocked) = match answered {
            Some((resp, outcome)) => (resp, outcome == Outcome::BlockedCname),
            None if at.transport.stream() => {
                self.metrics.jostled.inc();
                let mut buf = Vec::new();
                self.servfail_now(&mut buf, packet, &q);
                (buf, false)
            }
            None => {
                self.metrics.jostled.inc();
                return None;
            }
        };
        let list = self.lists.load();
        let how = if blocked { Blocked::Cname } else { Blocked::No };
        self.tap(at, packet, Some(&resp), &list, how);
        self.metrics
            .query_duration
            .observe(at.start.elapsed().as_secs_f64());
        Some(resp)
    }

    /// One query from a stream transport (TCP, DoT, DoH), all stages: the answer to
    /// send, or `None`. The resolution's future is boxed, so that this one stays
    /// small for the blocked and cached answers (HTTP/2 moves each request's future
    /// into a task of its own).
    pub async fn handle(&self, packet: &[u8], at: &Incoming) -> Option<Vec<u8>> {
        let mut buf = Vec::with_capacity(512);
        match self.receive(packet, at, &mut buf) {
            Reply::Send => {
                self.answered(at.start, 1);
                Some(buf)
            }
            Reply::Nothing => None,
            Reply::Resolve(pending) => Box::pin(self.resolve(packet, at, pending)).await,
        }
    }

    /// A page blocked by the URL proxy's path rule `rule` of `category`, for the
    /// client's place's workers (when its place has alerts).
    pub fn alert_path_hit(&self, client: IpAddr, category: &str, rule: &str) {
        if self.policy.load().places.has_alerts() {
            self.alerter.send(AlertHit {
                client: Asker::at(client),
                by: Decided::Category(category.to_string()),
                rule: xxhash_rust::xxh3::xxh3_64(rule.as_bytes()),
            });
        }
    }

    /// The addresses of `host` (a name, no trailing dot) as the resolver finds
    /// them, CNAMEs followed: for the URL proxy, which connects to the real host.
    /// Never the blocklist's or the proxy's own answer. IPv4 first.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let name = Name::from_ascii(format!("{host}.")).map_err(|e| format!("{host}: {e}"))?;
        let mut out = Vec::new();
        let mut why = String::new();
        for t in [RecordType::A, RecordType::AAAA] {
            let r = self
                .backend
                .resolve(name.clone(), t, false, false, self.deadline)
                .await;
            match r {
                Resolved::Answer { answers, .. } => {
                    out.extend(answers.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }));
                }
                Resolved::Negative { nxdomain: true, .. } => {
                    return Err(format!("{host}: no such name"));
                }
                Resolved::Negative { .. } => {}
                Resolved::Failed(f) => why = f.to_string(),
            }
            if !out.is_empty() {
                break;
            }
        }
        if out.is_empty() {
            return Err(if why.is_empty() {
                format!("{host}: no address")
            } else {
                format!("{host}: {why}")
            });
        }
        Ok(out)
    }

    /// Log queries to `tap` from now on (`None`: stop logging).
    pub fn set_tap(&self, tap: Option<Tap>) {
        self.tap.store(tap.map(Arc::new));
    }

    /// The time a query came, for the query log: read only when it is on.
    pub fn tap_clock(&self) -> SystemTime {
        if self.tap.load().is_some() {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH
        }
    }

    /// Log a query answered (`response`) or dropped (`None`) to dnstap, when it is
    /// on. A blocked query is logged with its rule, category and action, from the
    /// decision that blocked it (`list` is the list it was decided with).
    fn tap(
        &self,
        at: &Incoming,
        query: &[u8],
        response: Option<&[u8]>,
        list: &Blocklist,
        blocked: Blocked<'_>,
    ) {
        let tap = self.tap.load();
        let Some(tap) = tap.as_deref() else { return };
        let mut rule = [0u8; 256];
        let block = match blocked {
            Blocked::No => None,
            // Blocked by a CNAME target: the rule is the target's.
            Blocked::Cname => Some(dnstap::Block {
                rule: "",
                category: "cname",
                action: None,
            }),
            Blocked::Rule(q, info) => Some(dnstap::Block {
                rule: q
                    .suffix_lower(query, info.hit.depth as usize, &mut rule)
                    .unwrap_or(""),
                category: list.category(&info.hit),
                action: Some(info.action),
            }),
        };
        tap.log(&dnstap::Seen {
            client: at.client,
            server: at.server,
            protocol: match at.transport {
                Transport::Udp => dnstap::proto::SocketProtocol::Udp,
                Transport::Tcp => dnstap::proto::SocketProtocol::Tcp,
                Transport::Tls => dnstap::proto::SocketProtocol::Dot,
                Transport::Https => dnstap::proto::SocketProtocol::Doh,
            },
            query,
            received: at.received,
            response,
            answered: SystemTime::now(),
            block,
        });
    }
}

/// A query as a listener received it: from whom, to which address, over what, and
/// when.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// The client: the sender, or the one its PROXY header names.
    pub client: SocketAddr,
    /// fanzha's address as the client sees it (for the query log).
    pub server: Option<SocketAddr>,
    /// What it came over.
    pub transport: Transport,
    /// The place it named by its private DNS name (index in the places; checked
    /// by the listener): the place whose query it is, from any address.
    pub named: Option<u16>,
    /// When it came by the wall clock, for the query log ([`Engine::tap_clock`]).
    pub received: SystemTime,
    /// When it came, for the latency metric.
    pub start: Instant,
}

impl Incoming {
    /// Who asked: the client, and the place it named.
    pub fn asker(&self) -> Asker {
        Asker {
            ip: self.client.ip(),
            named: self.named,
        }
    }
}

/// What a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (RFC 7766).
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

impl Transport {
    /// Over a stream: never truncated, and a shed query gets SERVFAIL.
    pub fn stream(self) -> bool {
        self != Transport::Udp
    }

    /// The metrics label: udp, tcp, dot or doh.
    pub fn label(self) -> &'static str {
        crate::metrics::TRANSPORTS[self.index()]
    }

    /// The report's `via`: `dot` or `doh`, encrypted transports only.
    pub fn via(self) -> Option<&'static str> {
        match self {
            Transport::Tls | Transport::Https => Some(self.label()),
            _ => None,
        }
    }

    /// Its place among the metrics' transport labels.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What [`Engine::receive`] made of a query.
pub enum Reply {
    /// Send the answer written into the buffer.
    Send,
    /// Send nothing.
    Nothing,
    /// Resolve it with [`Engine::resolve`], in a task of its own.
    Resolve(Box<Pending>),
}

/// A query to resolve, holding its place among the resolutions in flight.
pub struct Pending {
    q: Query,
    slot: ResolutionSlot,
}

/// Whether, and how, a query logged to dnstap was blocked.
enum Blocked<'a> {
    No,
    /// By its name: the rule that matched.
    Rule(&'a Query, &'a BlockInfo),
    /// By a CNAME target in its answer.
    Cname,
}

/// What the CNAME re-check found in an answer's chain.
enum Cname {
    /// No listed target.
    Clear,
    /// A listed target that blocks: the block answer is written.
    Blocked,
    /// Listed targets, all spared (shadow or off) for this client.
    Spared,
}
