//! The public listener: aggregator webhooks.
//!
//! Routes: `POST /webhooks/{channel}/ussd`, `POST /webhooks/{channel}/sms`,
//! `GET|POST /webhooks/{channel}/status` (methods per channel kind). In
//! order, a request is:
//!
//! 1. routed (unknown path or channel 404, wrong method 405);
//! 2. given its client address ([`super::client_ip`]: the TCP peer, or the
//!    `X-Forwarded-For` hop a trusted proxy saw);
//! 3. read: a body declared over `server.max_body_bytes` gets 413 unread,
//!    one that grows past it 413 at once, one that stalls 408 after
//!    `server.body_read_timeout_ms` (each with `Connection: close`);
//! 4. authenticated by its channel (secret, signature, `allow_ips` against
//!    the client address). A failure spends one token of the client's
//!    failed-authentication budget (`server.auth_failures_per_minute`,
//!    `server.auth_failures_burst`) and gets 403; over that budget, 429 with
//!    `Retry-After`, and the connection is closed;
//! 5. limited per client address (`server.per_ip_per_second`,
//!    `server.per_ip_burst`; 429 with `Retry-After`): only requests to a
//!    channel that admits anyone (no secret, no signature, no narrow
//!    `allow_ips`: [`Channel::proves_sender`]) spend this budget. A request
//!    that proved it comes from the aggregator does not: the aggregator
//!    carries every woman's hops from one address, and one number
//!    flooding through it used to spend the budget of all (600 hops in
//!    0.4 s got 6 of 17 other women 429, which ends an AT session); the
//!    per-number limit (`limits.per_number_*`) holds that number instead;
//! 6. parsed by its channel (400 with a short reason), and handled.
//!
//! Each refusal is counted (`hotline_webhook_requests_total`) and changes
//! no state. Refusals of steps 3, 4 and 6 are also logged (`webhook
//! refused`, with the reason), at most once per channel and reason every
//! 10 s ([`super::log_limit`]): the next line says how many were left out
//! (`suppressed`), so a flood of bad requests cannot fill the disk. The
//! whole request, body included, must finish within
//! `server.request_timeout_ms` (503 otherwise). Requests hyper refuses
//! before this handler runs (a head too large, malformed or too slow) are
//! counted by the listener ([`super::listener`]).
//!
//! ## Why authentication comes before the general limit
//!
//! The general per-IP limit used to run first. Behind a proxy every request
//! then shares one budget, and even with the client address known, anyone
//! sharing an address with the aggregator (its NAT, a proxy not listed in
//! `trusted_proxies`) could spend that budget with wrong secrets and get the
//! aggregator 429s. Now a request must authenticate to spend the general
//! budget, and failures spend a separate, stricter one. (Since then, a
//! request that proves its sender spends neither: step 5.) There is
//! deliberately no refusal by address *before* authentication: it would let
//! the same neighbour lock the aggregator out. What an unauthenticated
//! request costs is bounded instead: at most `max_body_bytes` read within
//! `body_read_timeout_ms`, one constant-time comparison or HMAC, no store
//! work; past its failure budget each attempt also costs the sender a new
//! connection, which the per-address connection cap bounds.
//!
//! Nothing here decides anything about the domain: a parsed request goes
//! to the [`crate::gateway::Gateway`] service, whose typed
//! [`Outcome`] is counted and rendered in the aggregator's format.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::Response;
use super::client_ip::client_ip;
use super::log_limit::LogLimit;
use crate::app::App;
use crate::channel::{Channel, ChannelError, Event, Reply, Request};
use crate::metrics::{UNKNOWN_CHANNEL, WebhookSeries};
use crate::outcome::Outcome;

/// The webhook handler: the app, and the failed-authentication budget that
/// only this listener keeps.
pub struct Public {
    app: App,
    /// The app's channels by name, each with its metric series.
    routes: HashMap<String, Route>,
    /// Failed authentications per client address.
    pub auth_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// At most one `webhook refused` line per channel and reason a while.
    log_limit: LogLimit,
}

/// A channel that serves webhooks, and its series of the webhook metrics.
struct Route {
    channel: Arc<dyn Channel>,
    series: WebhookSeries,
}

/// A refusal, and whether the connection should be closed after it.
struct Refusal {
    reply: Reply,
    outcome: Outcome,
    /// Send `Connection: close` (the body was left unread, or the client
    /// is over a budget and should pay for a new connection).
    close: bool,
    /// Send `Retry-After` with these seconds.
    retry_after: Option<u64>,
}

impl Refusal {
    fn new(reply: Reply, outcome: Outcome) -> Self {
        Refusal {
            reply,
            outcome,
            close: false,
            retry_after: None,
        }
    }

    fn closing(reply: Reply, outcome: Outcome) -> Self {
        Refusal {
            reply,
            outcome,
            close: true,
            retry_after: None,
        }
    }
}

fn response(reply: Reply) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(reply.body)));
    *r.status_mut() = reply.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    response(Reply::text(status, body))
}

impl Public {
    /// The handler for `app`'s webhooks.
    pub fn new(app: App) -> Public {
        let cfg = &app.config.server;
        let per_minute = NonZeroU32::new(cfg.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.auth_failures_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        let routes = app
            .channels
            .iter()
            .map(|(name, channel)| {
                let route = Route {
                    channel: Arc::clone(channel),
                    series: WebhookSeries::new(app.metrics(), name),
                };
                (name.clone(), route)
            })
            .collect();
        Public {
            auth_failures: DefaultKeyedRateLimiter::keyed(quota),
            routes,
            app,
            log_limit: LogLimit::default(),
        }
    }

    /// Handle one request from the TCP peer `peer`.
    pub async fn handle(&self, req: http::Request<Incoming>, peer: SocketAddr) -> Response {
        let app = &self.app;
        let started = Instant::now();
        let (route, event) = match self.route(&req) {
            Ok(x) => x,
            Err(refused) => return *refused,
        };
        let channel = route.channel.as_ref();
        let client = client_ip(&app.config.server.trusted_proxies, peer.ip(), req.headers());
        let timeout = app.config.server.request_timeout;
        let served = tokio::time::timeout(timeout, self.serve(channel, event, req, client))
            .await
            .unwrap_or_else(|_| {
                Err(Refusal::new(
                    channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"),
                    Outcome::Timeout,
                ))
            });
        let (reply, outcome, refusal) = match served {
            Ok((reply, outcome)) => (reply, outcome, None),
            Err(r) => (r.reply, r.outcome, Some((r.close, r.retry_after))),
        };
        route.series.count(event, outcome);
        route.series.observe(event, started.elapsed().as_secs_f64());
        let mut r = response(reply);
        if let Some((close, retry_after)) = refusal {
            if close {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        r
    }

    /// Read the body, authenticate, limit, parse, handle.
    async fn serve(
        &self,
        channel: &dyn Channel,
        event: Event,
        req: http::Request<Incoming>,
        client: IpAddr,
    ) -> Result<(Reply, Outcome), Refusal> {
        let app = &self.app;
        let request = self.read(channel, event, req, client).await?;
        if channel.authenticate(&request).is_err() {
            return Err(self.auth_failed(channel, event, client));
        }
        // Only a channel that admits anyone spends the per-address budget:
        // a request that proved it comes from the aggregator carries every
        // woman's hops from the same address (module doc).
        if !channel.proves_sender()
            && let Err(not_until) = app.ip_limiter.check_key(&client)
        {
            app.metrics().ip_limited.inc();
            return Err(too_many(retry_after(&not_until), false));
        }
        let gw = &app.gateway;
        let name = channel.name();
        Ok(match event {
            Event::Ussd => match channel.parse_ussd(&request) {
                Ok(ussd) => {
                    let session_id = ussd.session_id.clone();
                    let answer = gw.ussd(name, ussd).await;
                    let reply =
                        channel.render_ussd_in_session(&session_id, &answer.text, answer.end);
                    (reply, answer.outcome)
                }
                Err(e) => self.refuse(channel, event, &e),
            },
            Event::Sms => match channel.parse_sms_batch(&request) {
                Ok((messages, refused)) => {
                    // Messages of a batch that cannot be read are refused
                    // alone (counted, logged like a refused request); the
                    // others are handled, and the batch acknowledged as
                    // they are.
                    for reason in &refused {
                        app.metrics().sms_refused.with_label_values(&[name]).inc();
                        self.log_refused(channel, event, reason);
                    }
                    ack_or_retry(channel, event, gw.sms(name, &messages).await)
                }
                Err(e) => self.refuse(channel, event, &e),
            },
            Event::Status => match channel.parse_status(&request) {
                Ok(reports) => ack_or_retry(channel, event, gw.status(name, reports).await),
                Err(e) => self.refuse(channel, event, &e),
            },
        })
    }

    /// Log a refused request, at most once per channel and reason every
    /// [`super::log_limit::LOG_EVERY`], with how many were left out since.
    fn log_refused(&self, channel: &dyn Channel, event: Event, reason: &str) {
        let name = channel.name();
        if let Some(suppressed) = self.log_limit.admit(name, reason, Instant::now()) {
            tracing::warn!(
                channel = name,
                event = event.as_str(),
                reason,
                suppressed,
                "webhook refused"
            );
        }
    }

    /// A failed authentication from `client`: 403 within its failure
    /// budget (logged as `webhook refused`, rate-limited); past it, 429
    /// and the connection closed (logged at debug only).
    fn auth_failed(&self, channel: &dyn Channel, event: Event, client: IpAddr) -> Refusal {
        match self.auth_failures.check_key(&client) {
            Ok(()) => {
                self.log_refused(channel, event, "authentication failed");
                Refusal::new(
                    channel.render_error(StatusCode::FORBIDDEN, "forbidden\n"),
                    Outcome::Forbidden,
                )
            }
            Err(not_until) => {
                tracing::debug!(
                    channel = channel.name(),
                    event = event.as_str(),
                    "webhook refused: authentication failed, over the failure budget"
                );
                self.app.metrics().ip_limited.inc();
                too_many(retry_after(&not_until), true)
            }
        }
    }
}

/// 429 with `Retry-After: secs`.
fn too_many(secs: u64, close: bool) -> Refusal {
    Refusal {
        reply: Reply::text(StatusCode::TOO_MANY_REQUESTS, "too many requests\n"),
        outcome: Outcome::RateLimited,
        close,
        retry_after: Some(secs),
    }
}

/// Whole seconds (at least one) until a limiter lets `client` through.
fn retry_after(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl Public {
    /// The channel and event a request is for, or the 404/405 to answer.
    fn route(&self, req: &http::Request<Incoming>) -> Result<(&Route, Event), Box<Response>> {
        let app = &self.app;
        let unknown = |event: Event| {
            app.metrics()
                .webhook_requests
                .with_label_values(&[UNKNOWN_CHANNEL, event.as_str(), Outcome::NotFound.as_str()])
                .inc();
        };
        let path = req
            .uri()
            .path()
            .strip_prefix("/webhooks/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(ch, ev)| Some((ch, Event::parse(ev)?)));
        let Some((channel_name, event)) = path else {
            unknown(Event::Ussd);
            return Err(Box::new(plain(StatusCode::NOT_FOUND, "not found\n")));
        };
        let Some(route) = self.routes.get(channel_name) else {
            unknown(event);
            let disabled = app
                .config
                .disabled_channels
                .iter()
                .any(|c| c == channel_name);
            let body = if disabled {
                "channel is disabled\n"
            } else {
                "no such channel\n"
            };
            return Err(Box::new(plain(StatusCode::NOT_FOUND, body)));
        };
        let Some(methods) = route.channel.methods(event) else {
            route.series.count(event, Outcome::NotFound);
            let body = "this channel does not take this event\n";
            return Err(Box::new(plain(StatusCode::NOT_FOUND, body)));
        };
        if !methods.contains(req.method()) {
            route.series.count(event, Outcome::MethodNotAllowed);
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return Err(Box::new(r));
        }
        Ok((route, event))
    }
}

/// Acknowledge, or ask the aggregator to deliver again when the store was
/// down (its retry is the only copy).
fn ack_or_retry(channel: &dyn Channel, event: Event, outcome: Outcome) -> (Reply, Outcome) {
    if outcome == Outcome::StoreUnavailable {
        let reply = channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        (reply, outcome)
    } else {
        (channel.render_ack(event), outcome)
    }
}

impl Public {
    /// Read the whole body, within the cap and the body timeout, into a
    /// [`Request`] from `client`.
    async fn read(
        &self,
        channel: &dyn Channel,
        event: Event,
        req: http::Request<Incoming>,
        client: IpAddr,
    ) -> Result<Request, Refusal> {
        let app = &self.app;
        let cap = app.config.server.max_body_bytes;
        // Logged as `refuse` logs a malformed one (the runbook's
        // HotlineBadRequestsSpike reads these reasons).
        let too_large = || {
            self.log_refused(channel, event, "body over server.max_body_bytes");
            Refusal::closing(
                channel.render_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
                Outcome::TooLarge,
            )
        };
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let timeout = app.config.server.body_read_timeout;
        let body = match tokio::time::timeout(timeout, Limited::new(body, cap).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large());
            }
            Ok(Err(_)) => {
                self.log_refused(channel, event, "could not read body");
                return Err(Refusal::closing(
                    channel.render_error(StatusCode::BAD_REQUEST, "could not read body\n"),
                    Outcome::BadRequest,
                ));
            }
            Err(_) => {
                // The client's fault, counted as a refusal of its own (not
                // `timeout`, the gateway's own failure: anyone can send a
                // slow body, and that must not page the operator).
                self.log_refused(channel, event, "body too slow");
                return Err(Refusal::closing(
                    channel.render_error(StatusCode::REQUEST_TIMEOUT, "body too slow\n"),
                    Outcome::SlowBody,
                ));
            }
        };
        Ok(Request {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
            peer: client,
        })
    }

    fn refuse(&self, channel: &dyn Channel, event: Event, e: &ChannelError) -> (Reply, Outcome) {
        self.log_refused(channel, event, &e.to_string());
        match e {
            ChannelError::BadRequest(reason) => (
                channel.render_error(StatusCode::BAD_REQUEST, &format!("{reason}\n")),
                Outcome::BadRequest,
            ),
            ChannelError::UnsupportedMediaType(reason) => (
                channel.render_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("{reason}\n")),
                Outcome::BadRequest,
            ),
            ChannelError::Forbidden => (
                channel.render_error(StatusCode::FORBIDDEN, "forbidden\n"),
                Outcome::Forbidden,
            ),
            ChannelError::NotSupported => (
                channel.render_error(
                    StatusCode::NOT_FOUND,
                    "this channel does not take this event\n",
                ),
                Outcome::NotFound,
            ),
        }
    }
}
