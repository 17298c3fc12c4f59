//! The application: every shared part, built once from the config.
//!
//! [`App`] is a cheap `Clone` handle around `Arc<Shared>`; each connection
//! task holds one. Tests build an `App` from a config and a store of their
//! choosing and hand it to [`crate::server::run`] with listeners on port 0.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::channel::{self, Channel};
use crate::clock::Clock;
use crate::config::{Config, Env};
use crate::conversation::Conversations;
use crate::dispatch::Dispatcher;
use crate::flow::{self, FlowSet};
use crate::metrics::Metrics;
use crate::privacy::Privacy;
use crate::problem::Problem;
use crate::store::Store;
use crate::store::memory::MemoryStore;

/// Everything a request handler may need.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Channels by name.
    pub channels: HashMap<String, Arc<dyn Channel>>,
    /// The conversation service (store, flows, keys, metrics).
    pub conversations: Conversations,
    /// Metrics.
    pub metrics: Metrics,
    /// Per-client-IP limit on the public listener.
    pub ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Set on SIGTERM: `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// Per-channel send rate (`tps`), for the outbox worker.
    pub limiters: HashMap<String, Arc<DefaultDirectRateLimiter>>,
    /// Wakes the outbox worker when this instance queued a message.
    pub outbox_notify: Arc<tokio::sync::Notify>,
    /// Who reacts to undelivered messages (lawyer dispatch).
    pub outbox_events: Option<Arc<dyn crate::outbox::worker::OutboxEvents>>,
    /// Lawyer dispatch, when configured.
    pub dispatcher: Option<Arc<Dispatcher>>,
}

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
        let (flows, mut problems) = load_flows(&config);
        let (channels, mut channel_problems) = build_channels(&config, &flows);
        problems.append(&mut channel_problems);
        let flows = Arc::new(flows);
        let privacy = Privacy::new(&config.privacy.pii_key);
        let (dispatcher, mut dispatch_problems) =
            load_dispatch(&config, &flows, &channels, &privacy, env, clock.now_ms());
        problems.append(&mut dispatch_problems);
        if problems.iter().any(Problem::is_error) {
            return Err(problems);
        }
        // The spool only matters for a store that can fail.
        let spool = if store.kind() == "memory" {
            None
        } else {
            match crate::spool::Spool::open(&config.store.spool_dir) {
                Ok(s) => Some(s),
                Err(e) => {
                    return Err(vec![Problem::error(
                        &config.source,
                        "store.spool_dir",
                        format!(
                            "cannot open the spool in {}: {e}",
                            config.store.spool_dir.display()
                        ),
                    )]);
                }
            }
        };
        let cities = flows.cities();
        let metrics = Metrics::new(
            config.channels.iter().map(|c| c.name.as_str()),
            flows.flows.keys().map(String::as_str),
            cities.iter().map(String::as_str),
        );
        metrics.store_up.set(1);
        let per_second =
            NonZeroU32::new(config.server.per_ip_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.server.per_ip_burst).unwrap_or(NonZeroU32::MIN);
        let conversations = Conversations {
            store,
            flows,
            privacy,
            metrics: metrics.clone(),
            limits: config.limits,
            clock,
            planner: dispatcher
                .clone()
                .map(|d| d as Arc<dyn crate::conversation::CasePlanner>),
            spool,
            default_flow: config.flows.default.clone(),
        };
        let limiters = channels
            .iter()
            .map(|(name, ch)| {
                let tps = NonZeroU32::new(ch.tps()).unwrap_or(NonZeroU32::MIN);
                (
                    name.clone(),
                    Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(tps))),
                )
            })
            .collect();
        let shared = Shared {
            limiters,
            outbox_notify: Arc::new(tokio::sync::Notify::new()),
            outbox_events: dispatcher
                .clone()
                .map(|d| d as Arc<dyn crate::outbox::worker::OutboxEvents>),
            dispatcher,
            channels,
            conversations,
            metrics,
            ip_limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            draining: AtomicBool::new(false),
            config,
        };
        Ok((App(Arc::new(shared)), problems))
    }

    /// The store for this config's `[store]` when it is the embedded one.
    pub fn memory_store(config: &Config) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new(config.store.max_sessions))
    }

    /// Start draining: `/readyz` turns 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.set(1);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Build every configured channel and check the flows they name.
pub fn build_channels(
    config: &Config,
    flows: &FlowSet,
) -> (HashMap<String, Arc<dyn Channel>>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut channels: HashMap<String, Arc<dyn Channel>> = HashMap::new();
    let flows_ok = !flows.flows.is_empty();
    let http = channel::http_client();
    for (i, cfg) in config.channels.iter().enumerate() {
        match channel::build(i, cfg, &config.source, &http) {
            Ok(ch) => {
                channels.insert(cfg.name.clone(), ch);
            }
            Err(mut p) => problems.append(&mut p),
        }
        if flows_ok && flows.get(&cfg.flow).is_none() {
            problems.push(Problem::error(
                &config.source,
                crate::problem::quoted(&format!("channels[{i}].flow"), &cfg.flow),
                "no flow with this id",
            ));
        }
    }
    if flows_ok && flows.get(&config.flows.default).is_none() {
        problems.push(Problem::error(
            &config.source,
            crate::problem::quoted("flows.default", &config.flows.default),
            "no flow with this id",
        ));
    }
    (channels, problems)
}

/// How far ahead `hotline check` looks for hours with nobody on call.
pub const GAP_CHECK_HOURS: u32 = 14 * 24;

/// Load the roster and lawyers' texts when dispatch is configured. Problems
/// include every hour in the next 14 days (from `now_ms`) with nobody on
/// call in a city, as warnings.
pub fn load_dispatch(
    config: &Config,
    flows: &Arc<FlowSet>,
    channels: &HashMap<String, Arc<dyn Channel>>,
    privacy: &Privacy,
    env: &dyn Env,
    now_ms: u64,
) -> (Option<Arc<Dispatcher>>, Vec<Problem>) {
    let Some(d) = &config.dispatch else {
        return (None, Vec::new());
    };
    let mut problems = Vec::new();
    let roster = match crate::dispatch::roster::load(&d.roster, env) {
        Ok((roster, mut warnings)) => {
            problems.append(&mut warnings);
            let cities = flows.cities();
            problems.extend(roster.check_cities(cities.iter().map(String::as_str), "flows"));
            let from = jiff::Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(0))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            for city in roster.city_ids() {
                for (start, end) in roster.gaps(city, from, GAP_CHECK_HOURS) {
                    let zone = roster
                        .city(city)
                        .map(|c| c.time_zone.clone())
                        .unwrap_or(jiff::tz::TimeZone::UTC);
                    let fmt = |t: jiff::Timestamp| {
                        t.to_zoned(zone.clone())
                            .strftime("%Y-%m-%d %H:%M")
                            .to_string()
                    };
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
            Some(roster)
        }
        Err(mut errors) => {
            problems.append(&mut errors);
            None
        }
    };
    let texts = match crate::dispatch::texts::LawyerTexts::load(&d.texts, &d.texts_display) {
        Ok(t) => Some(t),
        Err(mut errors) => {
            problems.append(&mut errors);
            None
        }
    };
    let (Some(roster), Some(texts)) = (roster, texts) else {
        return (None, problems);
    };
    let sending = channels
        .iter()
        .filter(|(_, c)| c.can_send())
        .map(|(n, _)| n.clone())
        .collect();
    let dispatcher = Dispatcher::new(
        roster,
        texts,
        d.sms_channel.clone(),
        sending,
        flows.clone(),
        privacy.clone(),
        config.flows.fallback_phone.clone(),
        u64::try_from(config.privacy.case_retention.as_millis()).unwrap_or(u64::MAX),
        u64::try_from(d.auto_close.as_millis()).unwrap_or(u64::MAX),
    );
    problems.extend(dispatcher.check_offers(&d.texts_display));
    (Some(Arc::new(dispatcher)), problems)
}

/// Load the flows a config names, with the lint warnings.
pub fn load_flows(config: &Config) -> (FlowSet, Vec<Problem>) {
    let (flows, mut problems) = flow::load_dir(
        &config.flows.dir,
        &config.flows.display_dir,
        &config.flows.fallback_phone,
    );
    for f in flows.flows.values() {
        problems.extend(flow::lint::lint(f));
    }
    (flows, problems)
}
