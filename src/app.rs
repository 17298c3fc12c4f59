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
use crate::config::Config;
use crate::conversation::Conversations;
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
    ) -> Result<(App, Vec<Problem>), Vec<Problem>> {
        let (flows, mut problems) = load_flows(&config);
        let (channels, mut channel_problems) = build_channels(&config, &flows);
        problems.append(&mut channel_problems);
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
            flows: Arc::new(flows),
            privacy: Privacy::new(&config.privacy.pii_key),
            metrics: metrics.clone(),
            limits: config.limits,
            clock,
            planner: None,
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
            outbox_events: None,
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
