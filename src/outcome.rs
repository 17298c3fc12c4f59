//! The outcome of one webhook request: one enum, one label set.
//!
//! Every handler returns an [`Outcome`]; `hotline_webhook_requests_total`
//! counts it by [`Outcome::as_str`], and its zeroed series come from
//! [`Outcome::ALL`], so a new outcome cannot be forgotten in the metrics.

/// How a webhook request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Handled.
    Ok,
    /// A retry of a delivery already handled: answered from the cache.
    Duplicate,
    /// Over a rate limit (per IP, or per caller).
    RateLimited,
    /// The aggregator's request could not be parsed.
    BadRequest,
    /// Authentication failed.
    Forbidden,
    /// No such route, channel or event.
    NotFound,
    /// The route exists; the method does not.
    MethodNotAllowed,
    /// The body was over the cap.
    TooLarge,
    /// The body did not arrive within `server.body_read_timeout_ms` (408):
    /// the client's fault, a refusal like `bad_request`, never `timeout`
    /// (the gateway's own failure, which pages).
    SlowBody,
    /// The store failed; the caller was answered calmly (or the aggregator
    /// asked to retry).
    StoreUnavailable,
    /// The request did not finish in time.
    Timeout,
    /// Anything else (a channel naming a flow that is not loaded, …).
    Error,
}

impl Outcome {
    /// Every outcome, for zeroed metric series.
    pub const ALL: [Outcome; 12] = [
        Outcome::Ok,
        Outcome::Duplicate,
        Outcome::RateLimited,
        Outcome::BadRequest,
        Outcome::Forbidden,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::TooLarge,
        Outcome::SlowBody,
        Outcome::StoreUnavailable,
        Outcome::Timeout,
        Outcome::Error,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Duplicate => "duplicate",
            Outcome::RateLimited => "rate_limited",
            Outcome::BadRequest => "bad_request",
            Outcome::Forbidden => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::TooLarge => "too_large",
            Outcome::SlowBody => "slow_body",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}
