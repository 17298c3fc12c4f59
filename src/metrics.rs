//! Every Prometheus metric the gateway exports, in one place.
//!
//! One [`Metrics`] value owns its registry (no globals), is created once at
//! start-up and shared. Labels come only from small fixed sets — channel
//! names from the config, events, outcomes, flow ids, city ids — and every
//! known combination is created at zero so that dashboards and alerts see a
//! series before the first event. Never put a number, a text or an id of a
//! person or case in a label.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Webhook events (the last segment of `/webhooks/{channel}/{event}`).
pub const EVENTS: &[&str] = &["ussd", "sms", "status"];

/// Outcomes of a webhook request.
pub const OUTCOMES: &[&str] = &[
    "ok",
    "duplicate",
    "rate_limited",
    "bad_request",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "too_large",
    "store_unavailable",
    "timeout",
    "error",
];

/// The channel label used for requests to a channel that does not exist.
pub const UNKNOWN_CHANNEL: &str = "_unknown";

/// Session outcomes.
pub const SESSION_OUTCOMES: &[&str] = &["completed", "invalid", "unavailable"];

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
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
    /// Sessions evicted from the memory store to stay within its bound.
    pub sessions_evicted: IntCounter,
    /// Requests refused by the per-IP limit on the public listener.
    pub ip_limited: IntCounter,
    /// Cases kept in the local spool because the store failed.
    pub cases_spooled: IntCounter,
    /// Cases in the local spool waiting for the store.
    pub spool_pending: IntGauge,
    /// Messages sent, by channel and purpose.
    pub outbox_sent: IntCounterVec,
    /// Messages given up, by channel and purpose.
    pub outbox_failed: IntCounterVec,
    /// Send attempts that will be retried, by channel.
    pub outbox_retries: IntCounterVec,
    /// SMS parts sent, by channel.
    pub sms_segments: IntCounterVec,
    /// Delivery reports received, by channel and state.
    pub delivery_reports: IntCounterVec,
    /// Time an aggregator took to answer a send, by channel.
    pub send_duration: HistogramVec,
    /// Cases accepted by a lawyer, by city.
    pub cases_accepted: IntCounterVec,
    /// Time from a case opening to a lawyer accepting it, by city.
    pub time_to_accept: HistogramVec,
    /// Cases moved to a further escalation level, by city and level.
    pub escalations: IntCounterVec,
    /// Cases whose caller was sent the fallback number because nobody had
    /// accepted in time, by city.
    pub cases_unanswered: IntCounterVec,
    /// Hours in the next 24 with nobody on call, by city.
    pub oncall_gap_hours: prometheus::GaugeVec,
    /// Lawyers' SMS commands, by command and outcome.
    pub lawyer_commands: IntCounterVec,
    /// 1 while shutting down.
    pub draining: IntGauge,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    /// Create every metric, with zeroed series for the known label values.
    pub fn new<'a>(
        channels: impl IntoIterator<Item = &'a str>,
        flows: impl IntoIterator<Item = &'a str>,
        cities: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let r = Registry::new();
        let webhook_requests = counter_vec(
            &r,
            "hotline_webhook_requests_total",
            "Webhook requests by channel, event and outcome.",
            &["channel", "event", "outcome"],
        );
        let webhook_duration = HistogramVec::new(
            HistogramOpts::new(
                "hotline_webhook_duration_seconds",
                "Time to answer a webhook, by channel and event.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
            ]),
            &["channel", "event"],
        )
        .expect("valid metric definition");
        r.register(Box::new(webhook_duration.clone()))
            .expect("metric registered once");
        let sessions_started = counter_vec(
            &r,
            "hotline_sessions_started_total",
            "Sessions started, by flow.",
            &["flow"],
        );
        let sessions_finished = counter_vec(
            &r,
            "hotline_sessions_finished_total",
            "Sessions finished, by flow and outcome (completed, invalid, unavailable).",
            &["flow", "outcome"],
        );
        let cases_opened = counter_vec(
            &r,
            "hotline_cases_opened_total",
            "Cases opened, by city.",
            &["city"],
        );
        let store_up = IntGauge::new(
            "hotline_store_up",
            "1 when the store answers, 0 when it does not.",
        )
        .expect("valid metric definition");
        r.register(Box::new(store_up.clone()))
            .expect("metric registered once");
        let store_errors = counter_vec(
            &r,
            "hotline_store_errors_total",
            "Store operations that failed, by operation.",
            &["op"],
        );
        let sessions_evicted = IntCounter::new(
            "hotline_sessions_evicted_total",
            "Sessions evicted from the memory store to stay within store.max_sessions.",
        )
        .expect("valid metric definition");
        r.register(Box::new(sessions_evicted.clone()))
            .expect("metric registered once");
        let ip_limited = IntCounter::new(
            "hotline_ip_rate_limited_total",
            "Requests refused by the per-IP limit on the public listener.",
        )
        .expect("valid metric definition");
        r.register(Box::new(ip_limited.clone()))
            .expect("metric registered once");
        let cases_spooled = IntCounter::new(
            "hotline_cases_spooled_total",
            "Completed cases kept in the local durable spool because the store failed.",
        )
        .expect("valid metric definition");
        r.register(Box::new(cases_spooled.clone()))
            .expect("metric registered once");
        let spool_pending = IntGauge::new(
            "hotline_spool_pending",
            "Cases in the local spool waiting to be replayed into the store.",
        )
        .expect("valid metric definition");
        r.register(Box::new(spool_pending.clone()))
            .expect("metric registered once");
        let outbox_sent = counter_vec(
            &r,
            "hotline_outbox_sent_total",
            "Messages sent, by channel and purpose.",
            &["channel", "purpose"],
        );
        let outbox_failed = counter_vec(
            &r,
            "hotline_outbox_failed_total",
            "Messages given up (permanent error, opted out, too many attempts, too old), by channel and purpose.",
            &["channel", "purpose"],
        );
        let outbox_retries = counter_vec(
            &r,
            "hotline_outbox_retries_total",
            "Send attempts that will be retried, by channel.",
            &["channel"],
        );
        let sms_segments = counter_vec(
            &r,
            "hotline_sms_segments_total",
            "SMS parts sent, by channel.",
            &["channel"],
        );
        let delivery_reports = counter_vec(
            &r,
            "hotline_delivery_reports_total",
            "Delivery reports received, by channel and state (sent, delivered, failed).",
            &["channel", "state"],
        );
        let send_duration = HistogramVec::new(
            HistogramOpts::new(
                "hotline_send_duration_seconds",
                "Time an aggregator took to answer a send, by channel.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0]),
            &["channel"],
        )
        .expect("valid metric definition");
        r.register(Box::new(send_duration.clone()))
            .expect("metric registered once");
        let cases_accepted = counter_vec(
            &r,
            "hotline_cases_accepted_total",
            "Cases accepted by a lawyer, by city.",
            &["city"],
        );
        let time_to_accept = HistogramVec::new(
            HistogramOpts::new(
                "hotline_case_time_to_accept_seconds",
                "Time from a case opening to a lawyer accepting it, by city (the standard: within 1 hour).",
            )
            .buckets(vec![60.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 14400.0, 28800.0]),
            &["city"],
        )
        .expect("valid metric definition");
        r.register(Box::new(time_to_accept.clone()))
            .expect("metric registered once");
        let escalations = counter_vec(
            &r,
            "hotline_escalations_total",
            "Cases moved to a further escalation level, by city and level.",
            &["city", "level"],
        );
        let cases_unanswered = counter_vec(
            &r,
            "hotline_cases_unanswered_total",
            "Cases whose caller was sent the fallback number because nobody accepted in time, by city.",
            &["city"],
        );
        let oncall_gap_hours = prometheus::GaugeVec::new(
            Opts::new(
                "hotline_oncall_gap_hours",
                "Hours in the next 24 with nobody on call, by city.",
            ),
            &["city"],
        )
        .expect("valid metric definition");
        r.register(Box::new(oncall_gap_hours.clone()))
            .expect("metric registered once");
        let lawyer_commands = counter_vec(
            &r,
            "hotline_lawyer_commands_total",
            "Lawyers' SMS commands, by command and outcome.",
            &["command", "outcome"],
        );
        let draining = IntGauge::new("hotline_draining", "1 while the gateway is shutting down.")
            .expect("valid metric definition");
        r.register(Box::new(draining.clone()))
            .expect("metric registered once");
        let build_info = IntGaugeVec::new(
            Opts::new("hotline_build_info", "Build information."),
            &["version"],
        )
        .expect("valid metric definition");
        r.register(Box::new(build_info.clone()))
            .expect("metric registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let channels: Vec<&str> = channels.into_iter().chain([UNKNOWN_CHANNEL]).collect();
        for ch in channels.iter().filter(|c| **c != UNKNOWN_CHANNEL) {
            for p in crate::outbox::Purpose::ALL {
                outbox_sent.with_label_values(&[*ch, p.as_str()]);
                outbox_failed.with_label_values(&[*ch, p.as_str()]);
            }
            outbox_retries.with_label_values(&[*ch]);
            sms_segments.with_label_values(&[*ch]);
            send_duration.with_label_values(&[*ch]);
            for st in ["sent", "delivered", "failed"] {
                delivery_reports.with_label_values(&[*ch, st]);
            }
        }
        for ch in &channels {
            for ev in EVENTS {
                webhook_duration.with_label_values(&[*ch, *ev]);
                for out in OUTCOMES {
                    webhook_requests.with_label_values(&[*ch, *ev, *out]);
                }
            }
        }
        for flow in flows {
            sessions_started.with_label_values(&[flow]);
            for out in SESSION_OUTCOMES {
                sessions_finished.with_label_values(&[flow, *out]);
            }
        }
        for city in cities.into_iter().chain(["other"]) {
            cases_opened.with_label_values(&[city]);
            cases_accepted.with_label_values(&[city]);
            time_to_accept.with_label_values(&[city]);
            cases_unanswered.with_label_values(&[city]);
            for level in ["on_call", "next_on_call", "team", "coordinator"] {
                escalations.with_label_values(&[city, level]);
            }
        }
        for cmd in crate::dispatch::commands::Command::LABELS {
            for outcome in [
                "ok",
                "refused",
                "not_found",
                "none_pending",
                "ambiguous",
                "unknown",
                "store_unavailable",
            ] {
                lawyer_commands.with_label_values(&[cmd, outcome]);
            }
        }
        for op in ["begin", "commit", "ping"] {
            store_errors.with_label_values(&[op]);
        }
        Metrics {
            registry: r,
            webhook_requests,
            webhook_duration,
            sessions_started,
            sessions_finished,
            cases_opened,
            store_up,
            store_errors,
            sessions_evicted,
            ip_limited,
            cases_spooled,
            spool_pending,
            outbox_sent,
            outbox_failed,
            outbox_retries,
            sms_segments,
            delivery_reports,
            send_duration,
            cases_accepted,
            time_to_accept,
            escalations,
            cases_unanswered,
            oncall_gap_hours,
            lawyer_commands,
            draining,
            build_info,
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
