//! Every Prometheus metric the gateway exports, in one place.
//!
//! One [`Metrics`] value owns its registry (no globals), is created once at
//! start-up and shared. Labels come only from small fixed sets — channel
//! names from the config, events, outcomes, flow ids, city ids — and every
//! known combination is created at zero so that dashboards and alerts see a
//! series before the first event. The label sets of events and outcomes are
//! the `ALL` constants of their enums ([`Outcome::ALL`], [`Event::ALL`],
//! [`CommandOutcome::ALL`], …), never hand-written copies. Never put a
//! number, a text or an id of a person or case in a label.

use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::channel::{DeliveryState, Event};
use crate::dispatch::CommandOutcome;
use crate::dispatch::board::{ACCEPTED, OpenGauges};
use crate::dispatch::commands::Command;
use crate::dispatch::roster::LevelKind;
use crate::flow::engine::Outcome as SessionOutcome;
use crate::outbox::Purpose;
use crate::outcome::Outcome;

/// The channel label used for requests to a channel that does not exist.
pub const UNKNOWN_CHANNEL: &str = "_unknown";

/// Store operations counted in `hotline_store_errors_total`.
pub const STORE_OPS: [&str; 4] = ["begin", "claim", "commit", "ping"];

/// Why hyper refused a connection's request before any handler ran
/// (`hotline_connections_refused_total`): its head was over
/// `server.max_header_bytes` (431), malformed (400), or not complete within
/// `server.header_read_timeout_ms` (closed unanswered).
pub const CONNECTION_REFUSALS: [&str; 3] = ["head_too_large", "malformed", "head_timeout"];

/// Why the gateway closed a public connection that was not serving a
/// request (`hotline_connections_closed_total`): to make room for a new one
/// when all `server.max_connections` were taken, or silent for
/// `server.idle_timeout_ms`.
pub const CONNECTION_CLOSES: [&str; 2] = ["evicted", "idle_timeout"];

/// Why a request that completed its flow left no case
/// (`hotline_cases_not_recorded_total`): every candidate code was taken,
/// the store was down and the local spool could not keep it, or the store
/// refused it otherwise.
pub const NOT_RECORDED_REASONS: [&str; 3] = ["codes_exhausted", "spool_failed", "store_error"];

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// The city label values every city gauge is zeroed for.
    cities: std::sync::Arc<[String]>,
    /// Webhook requests by channel, event and outcome.
    pub webhook_requests: IntCounterVec,
    /// Webhook handling time by channel and event.
    pub webhook_duration: HistogramVec,
    /// Sessions started by flow.
    pub sessions_started: IntCounterVec,
    /// Sessions finished by flow and outcome.
    pub sessions_finished: IntCounterVec,
    /// Cases opened by city.
    pub cases_opened: IntCounterVec,
    /// 1 when the store answers, 0 when it does not.
    pub store_up: IntGauge,
    /// Store operations that failed, by operation.
    pub store_errors: IntCounterVec,
    /// Messages of an SMS batch refused alone (the rest were handled).
    pub sms_refused: IntCounterVec,
    /// Times the store was found to have lost what it held.
    pub store_data_lost: IntCounter,
    /// Sessions evicted from the memory store to stay within its bound.
    pub sessions_evicted: IntCounter,
    /// Sealed records opened only with the previous key
    /// (`HOTLINE_PII_KEY_PREVIOUS`), synced from
    /// [`crate::privacy::Privacy::opened_with_previous`] at each scrape.
    pub sealed_opened_with_previous_key: IntCounter,
    /// Requests and connections refused by the per-address limits on the
    /// public listener.
    pub ip_limited: IntCounter,
    /// Connections from a trusted proxy closed for a missing or malformed
    /// PROXY protocol header.
    pub proxy_headers_refused: IntCounter,
    /// Connections to the public listener whose request hyper refused
    /// before the handler ran, by reason ([`CONNECTION_REFUSALS`]).
    pub connections_refused: IntCounterVec,
    /// Connections to the public listener the gateway closed while they
    /// served no request, by reason ([`CONNECTION_CLOSES`]).
    pub connections_closed: IntCounterVec,
    /// Cases kept in the local spool because the store failed.
    pub cases_spooled: IntCounter,
    /// Requests that completed their flow but left no case, by reason
    /// ([`NOT_RECORDED_REASONS`]); the caller was shown the fallback number.
    pub cases_not_recorded: IntCounterVec,
    /// Cases in the local spool waiting for the store.
    pub spool_pending: IntGauge,
    /// Inbound SMS kept while the store was down, waiting to be handled.
    pub inbox_pending: IntGauge,
    /// Inbound SMS kept while the store was down, by channel.
    pub sms_kept: IntCounterVec,
    /// Case codes leased by this instance, ready to be shown while the
    /// store is down.
    pub offline_codes: IntGauge,
    /// Spooled cases recorded with a code other than the one shown (a lost
    /// lease: should stay 0).
    pub spool_codes_changed: IntCounter,
    /// Spooled cases recorded meanwhile under another code, whose shown
    /// code became their alias (both name the case; messages name both).
    pub spool_codes_aliased: IntCounter,
    /// Cases the store had acknowledged and then lost (a failover, a crash
    /// back to an older snapshot), recorded again from this instance's
    /// memory ([`crate::spool::Spool::recheck`]).
    pub cases_restored: IntCounter,
    /// Cases rechecked after the store faltered and found in place.
    pub cases_rechecked: IntCounter,
    /// Messages sent, by channel and purpose.
    pub outbox_sent: IntCounterVec,
    /// Messages given up, by channel and purpose.
    pub outbox_failed: IntCounterVec,
    /// Send attempts that will be retried, by channel.
    pub outbox_retries: IntCounterVec,
    /// SMS parts sent, by channel.
    pub sms_segments: IntCounterVec,
    /// Delivery reports applied, by channel and state (`duplicate`: changed
    /// nothing).
    pub delivery_reports: IntCounterVec,
    /// Delivery reports that matched no message the gateway remembers, by
    /// channel (after waiting for their send's record, or pushed out of the
    /// full waiting set).
    pub delivery_reports_unmatched: IntCounterVec,
    /// Time an aggregator took to answer a send, by channel.
    pub send_duration: HistogramVec,
    /// 1 while a channel can send (as this instance last saw it), by channel.
    pub channel_up: IntGaugeVec,
    /// Sends that failed because of the channel (not the recipient), by
    /// channel and reason.
    pub channel_failures: IntCounterVec,
    /// Cases accepted by a lawyer, by city.
    pub cases_accepted: IntCounterVec,
    /// Time from a case opening to a lawyer accepting it, by city.
    pub time_to_accept: HistogramVec,
    /// Cases moved to a further escalation level, by city and level.
    pub escalations: IntCounterVec,
    /// Cases whose caller was sent the fallback number because nobody had
    /// accepted in time, by city.
    pub cases_unanswered: IntCounterVec,
    /// Cases that went through every escalation level unanswered, by city.
    pub cases_exhausted: IntCounterVec,
    /// Case outcomes recorded, by city and outcome id (`not_given` for a
    /// case closed without one).
    pub cases_closed: IntCounterVec,
    /// Seconds in the next 24 hours with nobody on call, by city.
    pub oncall_gap_seconds: GaugeVec,
    /// Cases not closed, by city and level (`accepted`, or the kind of the
    /// chain level an unaccepted case is at); refreshed by the timer worker.
    pub cases_open: IntGaugeVec,
    /// Open cases no key can open (another `HOTLINE_PII_KEY`, damaged):
    /// nobody can be offered them.
    pub cases_unreadable: IntGauge,
    /// How long the oldest case nobody has accepted has waited, by city.
    pub oldest_unaccepted: IntGaugeVec,
    /// Messages this instance holds for retry because their channel cannot
    /// send, by channel.
    pub outbox_held: IntGaugeVec,
    /// Age of the oldest message this instance holds, by channel.
    pub outbox_held_oldest: IntGaugeVec,
    /// Messages in the store's outbox (every instance's: due, waiting for a
    /// retry, or being sent), by channel; refreshed by the outbox worker.
    pub outbox_depth: IntGaugeVec,
    /// Age of the oldest message in the store's outbox, by channel.
    pub outbox_oldest: IntGaugeVec,
    /// Lawyers' SMS commands, by command and outcome.
    pub lawyer_commands: IntCounterVec,
    /// Replies to lawyers' commands not sent: over the per-lawyer budget.
    pub lawyer_replies_withheld: IntCounter,
    /// 1 while shutting down.
    pub draining: IntGauge,
    /// `hotline_config_generation`.
    pub config_generation: IntGauge,
    /// `hotline_config_reload_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `hotline_config_last_reload_timestamp_seconds`.
    pub config_last_reload: IntGauge,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn register<T: Collector + Clone + 'static>(r: &Registry, metric: T) -> T {
    r.register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(r, c)
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        r,
        IntCounter::new(name, help).expect("valid metric definition"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).expect("valid metric definition"),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    register(r, g)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(
        r,
        HistogramVec::new(opts, labels).expect("valid metric definition"),
    )
}

/// One channel's webhook series (`hotline_webhook_requests_total` by event
/// and outcome, `hotline_webhook_duration_seconds` by event), resolved once
/// when the listener starts: counting a request then indexes two arrays
/// instead of hashing its labels into each vector (~750 instructions a
/// hop). The series are the vectors' own: `/metrics` shows the same.
#[derive(Debug, Clone)]
pub struct WebhookSeries {
    requests: [[IntCounter; Outcome::ALL.len()]; Event::ALL.len()],
    duration: [Histogram; Event::ALL.len()],
}

impl WebhookSeries {
    /// `channel`'s series in `m`.
    pub fn new(m: &Metrics, channel: &str) -> Self {
        WebhookSeries {
            requests: Event::ALL.map(|ev| {
                Outcome::ALL.map(|out| {
                    m.webhook_requests
                        .with_label_values(&[channel, ev.as_str(), out.as_str()])
                })
            }),
            duration: Event::ALL.map(|ev| {
                m.webhook_duration
                    .with_label_values(&[channel, ev.as_str()])
            }),
        }
    }

    /// Count one request to `event` that ended as `outcome`.
    pub fn count(&self, event: Event, outcome: Outcome) {
        self.requests[event as usize][outcome as usize].inc();
    }

    /// Observe how long a request to `event` took.
    pub fn observe(&self, event: Event, seconds: f64) {
        self.duration[event as usize].observe(seconds);
    }
}

impl Metrics {
    /// Create every metric, with zeroed series for the known label values.
    pub fn new<'a>(
        channels: impl IntoIterator<Item = &'a str>,
        flows: impl IntoIterator<Item = &'a str>,
        cities: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let cities: Vec<&str> = cities.into_iter().chain(["other"]).collect();
        let mut m = Self::register_all(Registry::new());
        m.cities = cities.iter().map(|c| (*c).to_owned()).collect();
        m.build_info
            .with_label_values(&[crate::VERSION, crate::COMMIT])
            .set(1);
        m.zero_channels(&channels.into_iter().collect::<Vec<_>>());
        for flow in flows {
            m.sessions_started.with_label_values(&[flow]);
            for out in SessionOutcome::ALL {
                m.sessions_finished.with_label_values(&[flow, out.as_str()]);
            }
        }
        m.zero_cities(cities.iter().copied());
        m.set_open_cases(&OpenGauges::default());
        for cmd in Command::LABELS {
            for outcome in CommandOutcome::ALL {
                m.lawyer_commands
                    .with_label_values(&[cmd, outcome.as_str()]);
            }
        }
        for op in STORE_OPS {
            m.store_errors.with_label_values(&[op]);
        }
        for reason in NOT_RECORDED_REASONS {
            m.cases_not_recorded.with_label_values(&[reason]);
        }
        for reason in CONNECTION_REFUSALS {
            m.connections_refused.with_label_values(&[reason]);
        }
        for reason in CONNECTION_CLOSES {
            m.connections_closed.with_label_values(&[reason]);
        }
        for result in ["ok", "rejected"] {
            m.config_reloads.with_label_values(&[result]);
        }
        m
    }

    fn zero_channels(&self, channels: &[&str]) {
        for ch in channels {
            for p in Purpose::ALL {
                self.outbox_sent.with_label_values(&[*ch, p.as_str()]);
                self.outbox_failed.with_label_values(&[*ch, p.as_str()]);
            }
            self.outbox_retries.with_label_values(&[*ch]);
            self.outbox_held.with_label_values(&[*ch]);
            self.outbox_held_oldest.with_label_values(&[*ch]);
            self.outbox_depth.with_label_values(&[*ch]);
            self.outbox_oldest.with_label_values(&[*ch]);
            self.sms_segments.with_label_values(&[*ch]);
            self.send_duration.with_label_values(&[*ch]);
            for st in DeliveryState::ALL {
                self.delivery_reports.with_label_values(&[*ch, st.as_str()]);
            }
            self.delivery_reports
                .with_label_values(&[*ch, crate::outbox::status::DUPLICATE]);
            self.delivery_reports_unmatched.with_label_values(&[*ch]);
            self.sms_refused.with_label_values(&[*ch]);
            self.sms_kept.with_label_values(&[*ch]);
        }
        for ch in channels.iter().chain(&[UNKNOWN_CHANNEL]) {
            for ev in Event::ALL {
                self.webhook_duration.with_label_values(&[*ch, ev.as_str()]);
                for out in Outcome::ALL {
                    self.webhook_requests
                        .with_label_values(&[*ch, ev.as_str(), out.as_str()]);
                }
            }
        }
    }

    fn zero_cities<'a>(&self, cities: impl IntoIterator<Item = &'a str>) {
        for city in cities {
            self.cases_opened.with_label_values(&[city]);
            self.cases_accepted.with_label_values(&[city]);
            self.time_to_accept.with_label_values(&[city]);
            self.cases_unanswered.with_label_values(&[city]);
            self.cases_exhausted.with_label_values(&[city]);
            for (level, _) in LevelKind::ALL {
                self.escalations.with_label_values(&[city, level]);
            }
        }
    }

    /// Set the store-wide outbox gauges: `queued` maps a channel to its
    /// message count and the age (seconds) of its oldest; every channel
    /// seen before and not in `queued` goes to zero.
    pub fn set_outbox_queue(&self, queued: &std::collections::BTreeMap<String, (i64, i64)>) {
        let known: Vec<String> = self
            .outbox_depth
            .collect()
            .iter()
            .flat_map(|m| m.get_metric().iter())
            .filter_map(|series| series.get_label().first().map(|l| l.value().to_owned()))
            .collect();
        for ch in known.iter().filter(|ch| !queued.contains_key(ch.as_str())) {
            self.outbox_depth.with_label_values(&[ch.as_str()]).set(0);
            self.outbox_oldest.with_label_values(&[ch.as_str()]).set(0);
        }
        for (ch, (n, age)) in queued {
            self.outbox_depth.with_label_values(&[ch.as_str()]).set(*n);
            self.outbox_oldest
                .with_label_values(&[ch.as_str()])
                .set(*age);
        }
    }

    /// Zeroed series of `hotline_cases_closed_total` for every city and
    /// outcome id (the configured ones and `not_given`).
    pub fn zero_outcomes(&self, cities: &[&str], outcomes: &[&str]) {
        for city in cities {
            for outcome in outcomes {
                self.cases_closed.with_label_values(&[city, outcome]);
            }
        }
    }

    /// Set the open-case gauges to `g`: every known city and level at zero
    /// unless `g` counts it.
    pub fn set_open_cases(&self, g: &OpenGauges) {
        for city in self.cities.iter() {
            for level in LevelKind::ALL.map(|(n, _)| n).into_iter().chain([ACCEPTED]) {
                self.cases_open
                    .with_label_values(&[city.as_str(), level])
                    .set(0);
            }
            self.oldest_unaccepted.with_label_values(&[city]).set(0);
        }
        // And every series set before with another label (`unknown`, a
        // city a reload took out and put back): each reading replaces the
        // last whole (dispatch audit: 6 open cases shown for 3).
        use prometheus::core::Collector as _;
        for family in self.cases_open.collect() {
            for m in family.get_metric() {
                let labels: std::collections::HashMap<&str, &str> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                if let (Some(city), Some(level)) = (labels.get("city"), labels.get("level")) {
                    self.cases_open.with_label_values(&[city, level]).set(0);
                }
            }
        }
        // A city the roster does not know (a case opened on a flow
        // version a reload replaced) is `other`: labels come from a fixed
        // set, never from a case's data.
        let label = |city: &str| -> String {
            if self.cities.iter().any(|c| c == city) {
                city.to_owned()
            } else {
                "other".to_owned()
            }
        };
        let mut open: std::collections::BTreeMap<(String, &str), i64> =
            std::collections::BTreeMap::new();
        for ((city, level), n) in &g.open {
            *open.entry((label(city), level.as_str())).or_default() += *n;
        }
        for ((city, level), n) in &open {
            self.cases_open
                .with_label_values(&[city.as_str(), *level])
                .set(*n);
        }
        let mut oldest: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for (city, secs) in &g.oldest_unaccepted_secs {
            let o = oldest.entry(label(city)).or_default();
            *o = (*o).max(*secs);
        }
        for (city, secs) in &oldest {
            self.oldest_unaccepted.with_label_values(&[city]).set(*secs);
        }
    }

    // One flat list of definitions, one per field, in the struct's order:
    // longer than 80 lines on purpose, since splitting it would only
    // scatter the metric names a reader looks for.
    #[allow(clippy::too_many_lines)]
    fn register_all(r: Registry) -> Self {
        Metrics {
            webhook_requests: counter_vec(
                &r,
                "hotline_webhook_requests_total",
                "Webhook requests by channel, event and outcome.",
                &["channel", "event", "outcome"],
            ),
            webhook_duration: histogram_vec(
                &r,
                "hotline_webhook_duration_seconds",
                "Time to answer a webhook, by channel and event.",
                &["channel", "event"],
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
                ],
            ),
            sessions_started: counter_vec(
                &r,
                "hotline_sessions_started_total",
                "Sessions started, by flow.",
                &["flow"],
            ),
            sessions_finished: counter_vec(
                &r,
                "hotline_sessions_finished_total",
                "Sessions finished, by flow and outcome (completed, invalid).",
                &["flow", "outcome"],
            ),
            cases_opened: counter_vec(
                &r,
                "hotline_cases_opened_total",
                "Cases opened, by city.",
                &["city"],
            ),
            store_up: gauge(
                &r,
                "hotline_store_up",
                "1 when the store answers, 0 when it does not.",
            ),
            store_errors: counter_vec(
                &r,
                "hotline_store_errors_total",
                "Store operations that failed, by operation.",
                &["op"],
            ),
            sms_refused: counter_vec(
                &r,
                "hotline_sms_refused_total",
                "Inbound SMS refused alone and answered as handled, so the aggregator does not send them again, by channel: a message of an Infobip batch that cannot be read (a sender that is no phone number, a bad id; the batch's other messages were handled), or a Kannel SMS whose sender is no phone number (an operator's alphanumeric sender).",
                &["channel"],
            ),
            store_data_lost: counter(
                &r,
                "hotline_store_data_lost_total",
                "Times the store was found to have lost what it held (a Redis restarted without persistence, flushed, or failed over to an empty replica): open cases, queued offers and timers gone.",
            ),
            sessions_evicted: counter(
                &r,
                "hotline_sessions_evicted_total",
                "Sessions evicted from the memory store to stay within store.max_sessions.",
            ),
            sealed_opened_with_previous_key: counter(
                &r,
                "hotline_sealed_opened_with_previous_key_total",
                "Sealed records (cases, sessions, queued messages) opened only with the previous key, HOTLINE_PII_KEY_PREVIOUS, after a rotation: while it grows, that key is still needed.",
            ),
            ip_limited: counter(
                &r,
                "hotline_ip_rate_limited_total",
                "Requests and connections refused by the per-address limits on the public listener.",
            ),
            proxy_headers_refused: counter(
                &r,
                "hotline_proxy_headers_refused_total",
                "Connections from a trusted proxy closed for a missing, late or malformed PROXY protocol header.",
            ),
            connections_refused: counter_vec(
                &r,
                "hotline_connections_refused_total",
                "Connections to the public listener closed because the HTTP server refused the request before any webhook handler ran (so with no channel), by reason: head_too_large (431, over server.max_header_bytes), malformed (400, not HTTP/1.1), head_timeout (no complete head within server.header_read_timeout_ms).",
                &["reason"],
            ),
            connections_closed: counter_vec(
                &r,
                "hotline_connections_closed_total",
                "Connections to the public listener the gateway closed while they were not serving a request, by reason: evicted (all server.max_connections were taken and a new connection came: one still reading its first head, oldest first, else the keep-alive one idle longest, makes room), idle_timeout (nothing sent for server.idle_timeout_ms).",
                &["reason"],
            ),
            cases_spooled: counter(
                &r,
                "hotline_cases_spooled_total",
                "Completed cases kept in the local durable spool because the store failed.",
            ),
            cases_not_recorded: counter_vec(
                &r,
                "hotline_cases_not_recorded_total",
                "Requests that completed their flow but left no case (shown the fallback number instead of a code), by reason: codes_exhausted, spool_failed, store_error.",
                &["reason"],
            ),
            spool_pending: gauge(
                &r,
                "hotline_spool_pending",
                "Cases completed while the store was down, waiting in this instance's local spool to be recorded (not the recent cases rechecked after the store faltered).",
            ),
            inbox_pending: gauge(
                &r,
                "hotline_inbox_pending",
                "Inbound SMS (women's answers, lawyers' commands) kept in this instance's local inbox while the store was down, waiting to be handled.",
            ),
            sms_kept: counter_vec(
                &r,
                "hotline_sms_kept_total",
                "Inbound SMS the store could not take, kept in the local inbox (sealed, fsynced) and acknowledged to the aggregator, by channel; handled once the store answers.",
                &["channel"],
            ),
            offline_codes: gauge(
                &r,
                "hotline_offline_codes",
                "Case codes this instance holds (leased in the store) to show while the store is down; 0 means a request completed during an outage is not shown a code.",
            ),
            spool_codes_changed: counter(
                &r,
                "hotline_spool_codes_changed_total",
                "Spooled cases recorded with another code than the one the caller was shown (a lost code lease, or a case the store lost whose code another case took meanwhile; must stay 0).",
            ),
            spool_codes_aliased: counter(
                &r,
                "hotline_spool_codes_aliased_total",
                "Spooled cases the store had recorded meanwhile under another code (a commit that timed out but landed): the code the caller was shown became the case's alias, and messages name both codes.",
            ),
            cases_restored: counter(
                &r,
                "hotline_cases_restored_total",
                "Cases the store had acknowledged and then lost (a Redis master that died before its replica had the write, a Redis restarted from an older snapshot or empty), recorded again from this instance's memory of the cases it recorded in the last hour, with their offers and timers.",
            ),
            cases_rechecked: counter(
                &r,
                "hotline_cases_rechecked_total",
                "Cases this instance recorded lately that it checked again after the store faltered (a dropped connection, a timeout, a failover), and found in place.",
            ),
            outbox_sent: counter_vec(
                &r,
                "hotline_outbox_sent_total",
                "Messages sent, by channel and purpose.",
                &["channel", "purpose"],
            ),
            outbox_failed: counter_vec(
                &r,
                "hotline_outbox_failed_total",
                "Messages given up (permanent error, opted out, too many attempts, too old), by channel and purpose.",
                &["channel", "purpose"],
            ),
            outbox_retries: counter_vec(
                &r,
                "hotline_outbox_retries_total",
                "Send attempts that will be retried, by channel.",
                &["channel"],
            ),
            sms_segments: counter_vec(
                &r,
                "hotline_sms_segments_total",
                "SMS parts sent, by channel.",
                &["channel"],
            ),
            delivery_reports: counter_vec(
                &r,
                "hotline_delivery_reports_total",
                "Delivery reports applied to the record of a message, by channel and state (sent, delivered, failed), and those that changed nothing (state=duplicate: the same state again, or after delivered); each report once, when applied. Unmatched ones are in hotline_delivery_reports_unmatched_total.",
                &["channel", "state"],
            ),
            delivery_reports_unmatched: counter_vec(
                &r,
                "hotline_delivery_reports_unmatched_total",
                "Delivery reports that matched no message this gateway remembers, by channel: kept for up to outbox.send_timeout_ms + 5 s in case they overtook their send's record, or pushed out of the full waiting set (1024 reports), or naming no message at all.",
                &["channel"],
            ),
            send_duration: histogram_vec(
                &r,
                "hotline_send_duration_seconds",
                "Time an aggregator took to answer a send, by channel.",
                &["channel"],
                &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0],
            ),
            channel_up: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "hotline_channel_up",
                        "1 while a channel can send, 0 from a failure that is the channel's (credentials, balance, sender id, aggregator down) until its next successful send; by channel.",
                    ),
                    &["channel"],
                )
                .expect("valid metric definition"),
            ),
            channel_failures: counter_vec(
                &r,
                "hotline_channel_failures_total",
                "Sends that failed because of the channel, not the recipient, by channel and reason (no_credentials, refused, unavailable).",
                &["channel", "reason"],
            ),
            cases_accepted: counter_vec(
                &r,
                "hotline_cases_accepted_total",
                "Cases accepted by a lawyer, by city.",
                &["city"],
            ),
            time_to_accept: histogram_vec(
                &r,
                "hotline_case_time_to_accept_seconds",
                "Time from a case opening to a lawyer accepting it, by city (the standard: within 1 hour).",
                &["city"],
                &[
                    60.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0,
                    14400.0, 28800.0,
                ],
            ),
            escalations: counter_vec(
                &r,
                "hotline_escalations_total",
                "Cases moved to a further escalation level, by city and level.",
                &["city", "level"],
            ),
            cases_unanswered: counter_vec(
                &r,
                "hotline_cases_unanswered_total",
                "Cases nobody accepted within the city's unanswered_after_minutes, by city (their caller is sent the fallback number when the flow has messages.unanswered and her number is known).",
                &["city"],
            ),
            cases_exhausted: counter_vec(
                &r,
                "hotline_cases_exhausted_total",
                "Cases that went through every escalation level (all passes) unanswered, by city.",
                &["city"],
            ),
            cases_closed: counter_vec(
                &r,
                "hotline_cases_closed_total",
                "Case outcomes recorded, by city and outcome id from the lawyers' texts: each code the first time it is recorded on a case (at DONE or a correction); not_given for a case closed without one (by a lawyer or automatically).",
                &["city", "outcome"],
            ),
            oncall_gap_seconds: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "hotline_oncall_gap_seconds",
                        "Seconds in the next 24 hours with nobody on call, by city.",
                    ),
                    &["city"],
                )
                .expect("valid metric definition"),
            ),
            cases_open: gauge_vec(
                &r,
                "hotline_cases_open",
                "Cases not closed, by city and level: accepted, or the kind of the chain level an unaccepted case is at (on_call, next_on_call, team, coordinator). Read from the store by each instance's timer worker every 10 s.",
                &["city", "level"],
            ),
            cases_unreadable: gauge(
                &r,
                "hotline_cases_unreadable",
                "Open cases in the store this instance cannot open (sealed under another HOTLINE_PII_KEY, or damaged): no lawyer can be offered them. Read with the case gauges every 10 s.",
            ),
            oldest_unaccepted: gauge_vec(
                &r,
                "hotline_case_oldest_unaccepted_seconds",
                "How long the oldest case nobody has accepted has been waiting, by city (0: none waiting). Read from the store every 10 s.",
                &["city"],
            ),
            outbox_held: gauge_vec(
                &r,
                "hotline_outbox_held",
                "Messages this instance holds for retry because their channel cannot send, by channel (per instance, not the store's whole queue).",
                &["channel"],
            ),
            outbox_held_oldest: gauge_vec(
                &r,
                "hotline_outbox_held_oldest_seconds",
                "Age of the oldest message this instance holds for retry, by channel (0: none held).",
                &["channel"],
            ),
            outbox_depth: gauge_vec(
                &r,
                "hotline_outbox_depth",
                "Messages in the store's outbox, every instance's (due, waiting for a retry, or being sent), by channel. Read from the store by each instance's outbox worker every 10 s: every instance reports the same value (aggregate with max, not sum).",
                &["channel"],
            ),
            outbox_oldest: gauge_vec(
                &r,
                "hotline_outbox_oldest_seconds",
                "Age of the oldest message in the store's outbox, every instance's, by channel (0: none). Read from the store every 10 s.",
                &["channel"],
            ),
            lawyer_commands: counter_vec(
                &r,
                "hotline_lawyer_commands_total",
                "Lawyers' SMS commands, by command and outcome.",
                &["command", "outcome"],
            ),
            lawyer_replies_withheld: counter(
                &r,
                "hotline_lawyer_replies_withheld_total",
                "Replies to lawyers' commands not sent: more than 10 at once, or one per 3 minutes after that, for one lawyer on this instance.",
            ),
            draining: gauge(
                &r,
                "hotline_draining",
                "1 while the gateway is shutting down.",
            ),
            config_generation: gauge(
                &r,
                "hotline_config_generation",
                "Generation of the flows, roster and texts in force: 1 at start, one more per accepted reload.",
            ),
            config_reloads: counter_vec(
                &r,
                "hotline_config_reload_total",
                "Reloads (SIGHUP, POST /reload), by result (ok, rejected).",
                &["result"],
            ),
            config_last_reload: gauge(
                &r,
                "hotline_config_last_reload_timestamp_seconds",
                "When the last accepted reload was swapped in (Unix seconds; 0: none yet).",
            ),
            build_info: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "hotline_build_info",
                        "Build information: the release and the git commit (short hash; \"unknown\" when not built from a checkout).",
                    ),
                    &["version", "commit"],
                )
                .expect("valid metric definition"),
            ),
            registry: r,
            cities: std::sync::Arc::from(Vec::new()),
        }
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each reading of the open cases replaces the last whole: a series
    /// set once (`unknown`, a city a reload took out and put back) reads 0
    /// when the next reading has none for it.
    #[test]
    fn open_case_gauges_forget_what_the_last_reading_had() {
        let m = Metrics::new([], [], ["osh"]);
        let mut g = OpenGauges::default();
        g.open.insert(("osh".into(), "unknown".into()), 3);
        g.open.insert(("osh".into(), "coordinator".into()), 2);
        m.set_open_cases(&g);
        assert!(
            m.render()
                .contains(r#"hotline_cases_open{city="osh",level="unknown"} 3"#)
        );
        let mut g = OpenGauges::default();
        g.open.insert(("osh".into(), "coordinator".into()), 2);
        m.set_open_cases(&g);
        let text = m.render();
        assert!(
            text.contains(r#"hotline_cases_open{city="osh",level="unknown"} 0"#),
            "{text}"
        );
        assert!(text.contains(r#"hotline_cases_open{city="osh",level="coordinator"} 2"#));
    }

    /// `WebhookSeries` indexes by `as usize`: each `ALL` must list its enum
    /// in declaration order, and each series must be the vector's own.
    #[test]
    fn webhook_series_are_the_labelled_ones() {
        for (i, ev) in Event::ALL.into_iter().enumerate() {
            assert_eq!(ev as usize, i, "{}", ev.as_str());
        }
        for (i, out) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(out as usize, i, "{}", out.as_str());
        }
        let m = Metrics::new(["kannel"], ["legal_help"], ["osh"]);
        let series = WebhookSeries::new(&m, "kannel");
        series.count(Event::Sms, Outcome::RateLimited);
        series.count(Event::Sms, Outcome::RateLimited);
        series.count(Event::Status, Outcome::Ok);
        series.observe(Event::Ussd, 0.003);
        let text = m.render();
        for line in [
            r#"hotline_webhook_requests_total{channel="kannel",event="sms",outcome="rate_limited"} 2"#,
            r#"hotline_webhook_requests_total{channel="kannel",event="status",outcome="ok"} 1"#,
            r#"hotline_webhook_requests_total{channel="kannel",event="ussd",outcome="ok"} 0"#,
            r#"hotline_webhook_duration_seconds_count{channel="kannel",event="ussd"} 1"#,
            r#"hotline_webhook_duration_seconds_count{channel="kannel",event="sms"} 0"#,
        ] {
            assert!(text.contains(line), "{line}");
        }
    }

    #[test]
    fn known_series_exist_at_zero() {
        let m = Metrics::new(["africastalking"], ["legal_help"], ["bishkek"]);
        let text = m.render();
        assert!(text.contains(
            r#"hotline_webhook_requests_total{channel="africastalking",event="ussd",outcome="bad_request"} 0"#
        ));
        assert!(text.contains(
            r#"hotline_sessions_finished_total{flow="legal_help",outcome="completed"} 0"#
        ));
        assert!(text.contains(r#"hotline_cases_opened_total{city="bishkek"} 0"#));
        assert!(text.contains(r#"hotline_cases_opened_total{city="other"} 0"#));
        assert!(text.contains("hotline_webhook_duration_seconds_bucket"));
    }
}
