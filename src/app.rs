//! The application: every part, built once from the config, and wired.
//!
//! [`App::build`] loads flows, channels and dispatch, creates the metrics
//! and the narrow [`Deps`] each domain service holds, and composes the
//! [`Gateway`] service the HTTP layer calls and the background workers
//! ([`App::start_workers`]). [`App`] is a cheap `Clone` handle around
//! `Arc<Shared>`; each connection task holds one. Tests build an `App` from
//! a config and a store of their choosing and hand it to
//! [`crate::server::run`] with listeners on port 0. Nothing below this
//! module holds an `App`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::channel::{self, Channel};
use crate::clock::Clock;
use crate::codes::OfflineCodes;
use crate::config::{Config, Env};
use crate::conversation::Conversations;
use crate::deps::{Deps, Wake};
use crate::dispatch::timers::TimerWorker;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::flow::{self, FlowSet};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::outbox::worker::{Channels, Outbox, OutboxEvents};
use crate::privacy::Privacy;
use crate::problem::Problem;
use crate::reload::{FlowVersions, Live, Report};
use crate::spool::Spool;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::waking::Waking;
use crate::worker::{CodeLeaser, SpoolReplayer, StoreWatch, Workers};

/// Everything the listeners and workers need.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Channels by name (adapters: parse, authenticate, render, send).
    pub channels: Channels,
    /// Store, clock, keys, metrics, outbox wake-up.
    pub deps: Deps,
    /// The service between HTTP and the domain.
    pub gateway: Gateway,
    /// The outbox sender.
    pub outbox: Arc<Outbox>,
    /// The flows in force and the versions live sessions may still be on
    /// (swapped by a reload).
    pub live_flows: Live<FlowVersions>,
    /// Lawyer dispatch, when configured (swapped by a reload).
    pub live_dispatcher: Option<Live<Dispatcher>>,
    /// Where cases go when the store fails as they complete.
    pub spool: Option<Arc<Spool>>,
    /// Case codes this instance leased to show while the store is down
    /// (with the spool).
    pub codes: Option<Arc<OfflineCodes>>,
    /// Per-client-IP limit on the public listener.
    pub ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Set on SIGTERM: `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// The config file as it was read at start, to name the keys a reload
    /// cannot apply (`None` when it could not be read again).
    pub config_file: Option<toml::Table>,
    /// Held by a reload: one at a time.
    reloading: Mutex<()>,
}

/// How long a start waits for the store to tell who is off call
/// ([`App::read_dispatch_state`]).
pub const STATE_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A handle to the application.
#[derive(Clone)]
pub struct App(pub Arc<Shared>);

impl std::ops::Deref for App {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl App {
    /// Load flows and build channels for `config` (problems name files and
    /// keys), using `store` and `clock`.
    ///
    /// # Errors
    /// Every error found in flows and channel settings; warnings are returned
    /// alongside a successful build.
    pub fn build(
        config: Config,
        store: Arc<dyn Store>,
        clock: Clock,
        env: &dyn Env,
    ) -> Result<(App, Vec<Problem>), Vec<Problem>> {
        let (channels, mut problems) = build_channels(&config);
        // A fresh id per process: its spool file and its code leases. A
        // restarted instance's old spool is replayed as an orphan.
        let instance = format!("{:016x}", rand::random::<u64>());
        let spool = open_spool(&config, store.as_ref(), &instance).map_err(|p| vec![p])?;
        let codes = spool
            .as_ref()
            .map(|_| OfflineCodes::new(&instance, config.store.offline_codes));
        // The metrics' label sets come from the flows: read them first (the
        // set is loaded again, with the real dependencies, below).
        let (first_flows, _) = load_flows(&config);
        let cities = first_flows.cities();
        let metrics = Metrics::new(
            config.channels.iter().map(|c| c.name.as_str()),
            first_flows.flows.keys().map(String::as_str),
            cities.iter().map(String::as_str),
        );
        metrics.store_up.set(1);
        metrics.config_generation.set(1);
        // Every job the store accepts wakes its worker for its bucket.
        let wake = Wake::default();
        let deps = Deps {
            store: Arc::new(Waking::new(store, wake.clone())),
            clock,
            privacy: Privacy::from_config(&config.privacy),
            metrics,
            wake,
            settled: crate::deps::SettledHook::default(),
            store_log: Arc::default(),
        };
        if let Some(s) = &spool {
            deps.settled.set(s.clone());
        }
        // As `check` and a reload load it; what `serve` refused before
        // reload existed, and only that, stops it (the routing problems
        // `check` also reports do not).
        let (set, mut set_problems, _routing) =
            load_set_parts(&config, &channels, deps.clone(), env);
        problems.append(&mut set_problems);
        if problems.iter().any(Problem::is_error) {
            return Err(problems);
        }
        let LoadedSet { flows, dispatcher } = set;
        let dispatcher = dispatcher.map(Live::from);
        let flows = Live::from(Arc::new(FlowVersions::new(flows)));
        let channels: Channels = Arc::new(channels);
        let conversations = Conversations {
            deps: deps.clone(),
            flows: flows.clone(),
            limits: config.limits,
            planner: dispatcher
                .clone()
                .map(|d| Arc::new(d) as Arc<dyn crate::conversation::CasePlanner>),
            spool: spool.clone(),
            codes: codes.clone(),
            default_flow: config.flows.default.clone(),
            sms_out: Arc::new(sms_out(&config, &channels)),
            limited: Arc::default(),
        };
        let outbox = Arc::new(build_outbox(&config, &deps, &channels, dispatcher.as_ref()));
        let flow_of = config
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.flow.clone()))
            .collect();
        let gateway = Gateway::new(
            conversations,
            dispatcher.clone(),
            outbox.clone(),
            flow_of,
            config.flows.default.clone(),
        );
        let config_file = read_config_table(&config);
        let shared = Shared {
            ip_limiter: ip_limiter(&config),
            draining: AtomicBool::new(false),
            channels,
            deps,
            live_flows: flows,
            live_dispatcher: dispatcher,
            gateway,
            outbox,
            spool,
            codes,
            config,
            config_file,
            reloading: Mutex::new(()),
        };
        let app = App(Arc::new(shared));
        if let Some(spool) = &app.spool {
            let weak: std::sync::Weak<Shared> = Arc::downgrade(&app.0);
            spool.set_inbound(weak);
        }
        Ok((app, problems))
    }

    /// The store for this config's `[store]` when it is the embedded one.
    pub fn memory_store(config: &Config) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new(config.store.max_sessions))
    }

    /// Start the background workers (outbox, store watch, timers when
    /// dispatch is on, spool replay and code leases when there is a spool).
    pub fn start_workers(&self) -> Workers {
        let timers = self
            .live_dispatcher
            .clone()
            .map(|d| TimerWorker::new(d, self.config.outbox.poll));
        let spool = self
            .spool
            .clone()
            .map(|s| SpoolReplayer::new(self.deps.clone(), s));
        let codes = self
            .codes
            .clone()
            .map(|c| CodeLeaser::new(self.deps.clone(), c));
        Workers::start(
            self.outbox.clone(),
            StoreWatch::new(self.deps.clone()),
            timers,
            spool,
            codes,
        )
    }

    /// The configuration's generation, shown on the status page and as
    /// `hotline_config_generation`: 1 for the set the process started
    /// with, one more for each accepted reload.
    pub fn config_generation(&self) -> u64 {
        self.live_flows.get().generation
    }

    /// The flows in force now (read once per use: a reload may swap them).
    pub fn flows(&self) -> Arc<FlowVersions> {
        self.live_flows.get()
    }

    /// Lawyer dispatch as it is now, when configured.
    pub fn dispatcher(&self) -> Option<Arc<Dispatcher>> {
        self.live_dispatcher.as_ref().map(Live::get)
    }

    /// Re-read flows, roster (and its phones file) and lawyers' texts,
    /// check them as `hotline check` does, and swap them in, or keep the
    /// running set when any error is found ([`crate::reload`]). `env` is
    /// where the roster's phone variables are read. Logs and counts the
    /// result.
    pub fn reload(&self, env: &dyn Env) -> Report {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let report = self.try_reload(env);
        let m = self.metrics();
        let result = if report.applied { "ok" } else { "rejected" };
        m.config_reloads.with_label_values(&[result]).inc();
        m.config_generation
            .set(i64::try_from(report.generation).unwrap_or(i64::MAX));
        if report.applied {
            m.config_last_reload
                .set(i64::try_from(self.deps.clock.now_ms() / 1000).unwrap_or(i64::MAX));
        }
        for p in &report.problems {
            if p.is_error() {
                tracing::error!(problem = %p, "reload: configuration error");
            } else {
                tracing::warn!(problem = %p, "reload: configuration warning");
            }
        }
        if !report.restart_keys.is_empty() {
            // Say that the files were reloaded only when they were.
            let what = if report.applied {
                crate::reload::LOG_RELOADED
            } else {
                crate::reload::LOG_NOT_RELOADED
            };
            tracing::warn!(
                keys = %report.restart_keys.join(", "),
                "{} {what}",
                crate::reload::LOG_RESTART_KEYS
            );
        }
        if report.applied {
            tracing::info!(
                generation = report.generation,
                "{}",
                crate::reload::LOG_APPLIED
            );
        } else {
            tracing::error!(
                generation = report.generation,
                "{}",
                crate::reload::LOG_REJECTED
            );
        }
        report
    }

    fn try_reload(&self, env: &dyn Env) -> Report {
        let now = self.flows();
        let rejected = |problems: Vec<Problem>, restart_keys: Vec<String>| Report {
            applied: false,
            generation: now.generation,
            problems,
            restart_keys,
        };
        // The config file is checked as `check` checks it; its changes are
        // named, not applied.
        let path = std::path::Path::new(&self.config.source);
        let mut problems = match crate::config::load(path, env) {
            Ok((_, warnings)) => warnings,
            Err(e) => return rejected(e.problems().to_vec(), Vec::new()),
        };
        let restart_keys = match (&self.config_file, read_config_table(&self.config)) {
            (Some(old), Some(new)) => crate::reload::changed_keys(old, &new),
            _ => Vec::new(),
        };
        let (set, mut set_problems) =
            load_set(&self.config, &self.channels, self.deps.clone(), env);
        problems.append(&mut set_problems);
        if problems.iter().any(Problem::is_error) {
            return rejected(problems, restart_keys);
        }
        // Dispatch first: a new flow's case for a new city finds its roster.
        if let (Some(live), Some(new)) = (&self.live_dispatcher, &set.dispatcher) {
            let old = live.get();
            new.take_state_of(&old);
            live.set(new.clone());
        }
        let next = Arc::new(now.next(set.flows));
        let generation = next.generation;
        self.live_flows.set(next);
        Report {
            applied: true,
            generation,
            problems,
            restart_keys,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.deps.metrics
    }

    /// Read the lawyers off call and the coordinators' covers from the
    /// store once, before the listeners answer and the workers start
    /// ([`crate::server::run`]): otherwise a case opened or replayed in the
    /// first seconds after a restart would be offered to a lawyer who sent
    /// `OFF`. Waits at most [`STATE_READ_WAIT`]; with the store down the
    /// timer worker fires no timer until it has read them (and cases
    /// completed meanwhile are spooled, planned with what is known: nobody
    /// off call).
    pub async fn read_dispatch_state(&self) {
        let Some(d) = self.dispatcher() else {
            return;
        };
        match tokio::time::timeout(STATE_READ_WAIT, d.refresh_state()).await {
            Ok(Ok(())) => {
                tracing::debug!(off = d.off_set().len(), "off-call set read at start");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the lawyers off call at start; escalations wait until it is read");
            }
            Err(_) => {
                tracing::warn!(
                    "the store did not answer in time to read the lawyers off call at start; escalations wait until it is read"
                );
            }
        }
    }

    /// Start draining: `/readyz` turns 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.deps.metrics.draining.set(1);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The outbox sender, reacting to undelivered offers through dispatch and
/// sending through the dispatch fallback channel while its channel is down.
fn build_outbox(
    config: &Config,
    deps: &Deps,
    channels: &Channels,
    dispatcher: Option<&Live<Dispatcher>>,
) -> Outbox {
    let events = dispatcher.map(|d| Arc::new(d.clone()) as Arc<dyn OutboxEvents>);
    let outbox = Outbox::new(deps.clone(), channels.clone(), config.outbox, events);
    match &config.dispatch {
        Some(d) => match &d.fallback_sms_channel {
            Some(fallback) => outbox.with_fallback(&d.sms_channel, fallback),
            None => outbox,
        },
        None => outbox,
    }
}

fn ip_limiter(config: &Config) -> DefaultKeyedRateLimiter<IpAddr> {
    let per_second = NonZeroU32::new(config.server.per_ip_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(config.server.per_ip_burst).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
}

/// Where SMS to a woman go when the channel she wrote on cannot send: the
/// dispatch SMS channel, when there is one that can.
fn sms_out(config: &Config, channels: &Channels) -> std::collections::HashMap<String, String> {
    let Some(out) = config
        .dispatch
        .as_ref()
        .map(|d| d.sms_channel.clone())
        .filter(|n| channels.get(n).is_some_and(|c| c.can_send()))
    else {
        return std::collections::HashMap::new();
    };
    channels
        .iter()
        .filter(|(_, c)| !c.can_send())
        .map(|(name, _)| (name.clone(), out.clone()))
        .collect()
}

/// The spool of the instance `instance`, for a store that can fail (not
/// the embedded one).
fn open_spool(
    config: &Config,
    store: &dyn Store,
    instance: &str,
) -> Result<Option<Arc<Spool>>, Problem> {
    if store.kind() == "memory" {
        return Ok(None);
    }
    Spool::open(&config.store.spool_dir, instance)
        .map(Some)
        .map_err(|e| {
            Problem::error(
                &config.source,
                "store.spool_dir",
                format!(
                    "cannot open the spool in {}: {e}",
                    config.store.spool_dir.display()
                ),
            )
        })
}

/// Build every configured channel.
pub fn build_channels(config: &Config) -> (HashMap<String, Arc<dyn Channel>>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut channels: HashMap<String, Arc<dyn Channel>> = HashMap::new();
    let http = channel::send::http_client_with(config.outbox.send_timeout);
    for (i, cfg) in config.channels.iter().enumerate() {
        match channel::build_warned(i, cfg, &config.source, &http) {
            Ok((ch, mut warnings)) => {
                channels.insert(cfg.name.clone(), ch);
                problems.append(&mut warnings);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    (channels, problems)
}

/// An error for every flow the config names (a channel's, the default)
/// that `flows` lacks.
pub fn flow_references(config: &Config, flows: &FlowSet) -> Vec<Problem> {
    let mut problems = Vec::new();
    if flows.flows.is_empty() {
        return problems; // the folder's own error says why
    }
    for (i, cfg) in config.channels.iter().enumerate() {
        if flows.get(&cfg.flow).is_none() {
            problems.push(Problem::error(
                &config.source,
                crate::problem::quoted(&format!("channels[{i}].flow"), &cfg.flow),
                "no flow with this id",
            ));
        }
    }
    if flows.get(&config.flows.default).is_none() {
        problems.push(Problem::error(
            &config.source,
            crate::problem::quoted("flows.default", &config.flows.default),
            "no flow with this id",
        ));
    }
    problems
}

/// The part of the configuration a reload re-reads: flows, and dispatch
/// (roster, phones, lawyers' texts) when configured.
#[derive(Debug)]
pub struct LoadedSet {
    /// The flows.
    pub flows: Arc<FlowSet>,
    /// Dispatch over them, when `[dispatch]` is configured and loaded.
    pub dispatcher: Option<Arc<Dispatcher>>,
}

/// Load flows, roster and lawyers' texts for `config` and check them:
/// the one path `hotline check` and a reload share (`serve` uses it too,
/// see [`App::build`]). Any error means the set must not be served.
pub fn load_set(
    config: &Config,
    channels: &HashMap<String, Arc<dyn Channel>>,
    deps: Deps,
    env: &dyn Env,
) -> (LoadedSet, Vec<Problem>) {
    let (set, mut problems, routing) = load_set_parts(config, channels, deps, env);
    problems.extend(routing);
    (set, problems)
}

/// [`load_set`], with the per-country routing problems
/// ([`crate::flow::countries::check`]) apart: `serve` has never refused
/// to start over them (only `check`, and a reload, do).
fn load_set_parts(
    config: &Config,
    channels: &HashMap<String, Arc<dyn Channel>>,
    deps: Deps,
    env: &dyn Env,
) -> (LoadedSet, Vec<Problem>, Vec<Problem>) {
    let (flows, mut problems) = load_flows(config);
    problems.extend(unkept_promises(config, &flows));
    problems.extend(flow_references(config, &flows));
    let flows = Arc::new(flows);
    let (dispatcher, mut dispatch_problems) =
        load_dispatch_with(config, &flows, channels, deps, env);
    problems.append(&mut dispatch_problems);
    let routing = crate::flow::countries::check(
        &flows,
        &config.source,
        dispatcher.as_deref().map(|d| &d.roster),
    );
    (LoadedSet { flows, dispatcher }, problems, routing)
}

/// The config file as a TOML table (to compare with a later read).
fn read_config_table(config: &Config) -> Option<toml::Table> {
    std::fs::read_to_string(&config.source)
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
}

/// How far ahead `hotline check` looks for hours with nobody on call.
pub const GAP_CHECK_HOURS: u32 = 14 * 24;

/// Load the roster and lawyers' texts when dispatch is configured. Problems
/// include every stretch in the next 14 days (from the clock's now) with
/// nobody on call in a city, as warnings.
pub fn load_dispatch_with(
    config: &Config,
    flows: &Arc<FlowSet>,
    channels: &HashMap<String, Arc<dyn Channel>>,
    deps: Deps,
    env: &dyn Env,
) -> (Option<Arc<Dispatcher>>, Vec<Problem>) {
    let Some(d) = &config.dispatch else {
        return (None, Vec::new());
    };
    let mut problems = unsendable(config, d, channels);
    let roster = match crate::dispatch::roster::load(&d.roster, env) {
        Ok((roster, mut warnings)) => {
            problems.append(&mut warnings);
            if let Some(why) = config.production() {
                problems.extend(roster.production_problems(&why));
            }
            let cities = flows.cities();
            problems.extend(roster.check_cities(cities.iter().map(String::as_str), "flows"));
            problems.extend(gap_warnings(&roster, deps.clock.now()));
            Some(roster)
        }
        Err(mut errors) => {
            problems.append(&mut errors);
            None
        }
    };
    let texts = match crate::dispatch::texts::LawyerTexts::load(&d.texts, &d.texts_display) {
        Ok(t) => {
            problems.extend(t.check_sizes(&d.texts_display));
            Some(t)
        }
        Err(mut errors) => {
            problems.append(&mut errors);
            None
        }
    };
    let (Some(roster), Some(texts)) = (roster, texts) else {
        return (None, problems);
    };
    problems.extend(texts.missing_languages(&roster, &d.texts_display));
    let sending_channels = channels
        .iter()
        .filter(|(_, c)| c.can_send())
        .map(|(n, _)| n.clone())
        .collect();
    let settings = DispatchSettings {
        roster,
        texts,
        sms_channel: d.sms_channel.clone(),
        sending_channels,
        flows: flows.clone(),
        retention_ms: u64::try_from(config.privacy.case_retention.as_millis()).unwrap_or(u64::MAX),
        auto_close_ms: u64::try_from(d.auto_close.as_millis()).unwrap_or(u64::MAX),
    };
    let dispatcher = Dispatcher::new(settings, deps);
    problems.extend(dispatcher.check_offers(&d.texts_display));
    (Some(Arc::new(dispatcher)), problems)
}

/// Errors for `dispatch.sms_channel` (and its fallback) when it cannot
/// send: every offer, and the woman's confirmation, would be lost.
fn unsendable(
    config: &Config,
    d: &crate::config::DispatchConfig,
    channels: &HashMap<String, Arc<dyn Channel>>,
) -> Vec<Problem> {
    let keys = std::iter::once(("dispatch.sms_channel", &d.sms_channel)).chain(
        d.fallback_sms_channel
            .iter()
            .map(|f| ("dispatch.fallback_sms_channel", f)),
    );
    keys.filter(|(_, name)| channels.get(*name).is_some_and(|c| !c.can_send()))
        .map(|(key, name)| {
            Problem::error(
                &config.source,
                crate::problem::quoted(key, name),
                "this channel cannot send SMS (no sending credentials): offers to lawyers would never go out. Configure its sending settings, or name a channel that can send",
            )
        })
        .collect()
}

/// An error for every flow that opens cases when nobody will handle them:
/// no `[dispatch]`, and the operator has not said that cases are handled
/// elsewhere (`flows.cases_handled_elsewhere = true`). The woman would be
/// told "we will call you soon" and nobody would.
pub fn unkept_promises(config: &Config, flows: &FlowSet) -> Vec<Problem> {
    if config.dispatch.is_some() || config.flows.cases_handled_elsewhere {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for flow in flows.flows.values() {
        for (id, node) in &flow.spec.nodes {
            if let flow::model::Node::End(e) = node
                && e.open_case
            {
                problems.push(Problem::error(
                    &flow.source,
                    format!("nodes.{id}.open_case = true"),
                    format!(
                        "opens a case, but {} has no [dispatch]: nobody would be told. Configure [dispatch], or set flows.cases_handled_elsewhere = true if cases reach lawyers another way",
                        config.source
                    ),
                ));
            }
        }
    }
    problems
}

/// A warning for every stretch in the next 14 days with nobody on call,
/// except those an `[[acknowledged_gaps]]` entry of the roster covers.
fn gap_warnings(roster: &crate::dispatch::roster::Roster, from: jiff::Timestamp) -> Vec<Problem> {
    let mut problems = Vec::new();
    for city in roster.city_ids() {
        let zone = roster
            .city(city)
            .map(|c| c.time_zone.clone())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let fmt = |t: jiff::Timestamp| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        };
        for (start, end) in roster.gaps(city, from, GAP_CHECK_HOURS) {
            if roster.acknowledged(city, start, end).is_some() {
                continue;
            }
            problems.push(Problem::warning(
                &roster.source,
                format!("cities.{city}"),
                format!(
                    "nobody on call from {} to {} (local time)",
                    fmt(start),
                    fmt(end)
                ),
            ));
        }
    }
    problems
}

/// Load the flows a config names, with the lint problems (a screen over
/// its USSD limit is an error: the network would cut it).
pub fn load_flows(config: &Config) -> (FlowSet, Vec<Problem>) {
    let (flows, mut problems) = flow::load_dir(
        &config.flows.dir,
        &config.flows.display_dir,
        &config.flows.fallbacks,
    );
    for f in flows.flows.values() {
        problems.extend(flow::lint::lint(f));
    }
    (flows, problems)
}

#[async_trait::async_trait]
impl crate::spool::Inbound for Shared {
    async fn handle_kept(&self, channel: &str, msg: crate::channel::SmsIn) -> bool {
        self.gateway.sms_kept(channel, &msg).await
    }

    fn privacy(&self) -> crate::privacy::Privacy {
        self.deps.privacy.clone()
    }
}
