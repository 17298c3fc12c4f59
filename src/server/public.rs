//! The public listener: aggregator webhooks.
//!
//! Routes: `POST /webhooks/{channel}/ussd`, `POST /webhooks/{channel}/sms`,
//! `GET|POST /webhooks/{channel}/status` (methods per channel kind). In
//! order, a request is: routed (unknown path or channel 404, wrong method
//! 405), limited per client IP (429 with `Retry-After`), size-checked (over
//! `server.max_body_bytes`: 413, without reading the rest), authenticated
//! (403), parsed by its channel (400 with a short reason), and handled. Each
//! refusal is counted and changes no state. The whole request, body
//! included, must finish within `server.request_timeout` (503 otherwise).
//!
//! Nothing here decides anything about the domain: a parsed request goes
//! to the [`crate::gateway::Gateway`] service, whose typed
//! [`Outcome`] is counted and rendered in the aggregator's format.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::Response;
use crate::app::App;
use crate::channel::{Channel, ChannelError, Event, Reply, Request};
use crate::metrics::UNKNOWN_CHANNEL;
use crate::outcome::Outcome;

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

/// Handle one request on the public listener.
pub async fn handle(app: App, req: http::Request<Incoming>, peer: SocketAddr) -> Response {
    let started = Instant::now();
    let (channel, event) = match route(&app, &req) {
        Ok(x) => x,
        Err(refused) => return *refused,
    };
    let name = channel.name().to_owned();
    let count = |outcome: Outcome| {
        app.metrics()
            .webhook_requests
            .with_label_values(&[&name, event.as_str(), outcome.as_str()])
            .inc();
    };
    if let Err(not_until) = app.ip_limiter.check_key(&peer.ip()) {
        count(Outcome::RateLimited);
        app.metrics().ip_limited.inc();
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return r;
    }
    let timeout = app.config.server.request_timeout;
    let result =
        tokio::time::timeout(timeout, serve(&app, channel.as_ref(), event, req, peer)).await;
    let (reply, outcome) = result.unwrap_or_else(|_| {
        (
            channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"),
            Outcome::Timeout,
        )
    });
    count(outcome);
    app.metrics()
        .webhook_duration
        .with_label_values(&[&name, event.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response(reply)
}

/// The channel and event a request is for, or the 404/405 to answer.
fn route(
    app: &App,
    req: &http::Request<Incoming>,
) -> Result<(Arc<dyn Channel>, Event), Box<Response>> {
    let unknown = |event: Event| {
        app.metrics()
            .webhook_requests
            .with_label_values(&[UNKNOWN_CHANNEL, event.as_str(), Outcome::NotFound.as_str()])
            .inc();
    };
    let route = req
        .uri()
        .path()
        .strip_prefix("/webhooks/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(ch, ev)| Some((ch, Event::parse(ev)?)));
    let Some((channel_name, event)) = route else {
        unknown(Event::Ussd);
        return Err(Box::new(plain(StatusCode::NOT_FOUND, "not found\n")));
    };
    let Some(channel) = app.channels.get(channel_name).cloned() else {
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
    let count = |outcome: Outcome| {
        app.metrics()
            .webhook_requests
            .with_label_values(&[channel.name(), event.as_str(), outcome.as_str()])
            .inc();
    };
    let Some(methods) = channel.methods(event) else {
        count(Outcome::NotFound);
        let body = "this channel does not take this event\n";
        return Err(Box::new(plain(StatusCode::NOT_FOUND, body)));
    };
    if !methods.contains(req.method()) {
        count(Outcome::MethodNotAllowed);
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return Err(Box::new(r));
    }
    Ok((channel, event))
}

/// Read the body (capped), authenticate, parse, handle.
async fn serve(
    app: &App,
    channel: &dyn Channel,
    event: Event,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> (Reply, Outcome) {
    let request = match read(app, channel, req, peer).await {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    if channel.authenticate(&request).is_err() {
        tracing::warn!(
            channel = channel.name(),
            event = event.as_str(),
            "webhook refused: authentication failed"
        );
        return (
            channel.render_error(StatusCode::FORBIDDEN, "forbidden\n"),
            Outcome::Forbidden,
        );
    }
    let gw = &app.gateway;
    let name = channel.name();
    match event {
        Event::Ussd => match channel.parse_ussd(&request) {
            Ok(ussd) => {
                let session_id = ussd.session_id.clone();
                let answer = gw.ussd(name, ussd).await;
                let reply = channel.render_ussd_in_session(&session_id, &answer.text, answer.end);
                (reply, answer.outcome)
            }
            Err(e) => refuse(channel, event, &e),
        },
        Event::Sms => match channel.parse_sms(&request) {
            Ok(messages) => ack_or_retry(channel, event, gw.sms(name, &messages).await),
            Err(e) => refuse(channel, event, &e),
        },
        Event::Status => match channel.parse_status(&request) {
            Ok(reports) => ack_or_retry(channel, event, gw.status(name, reports).await),
            Err(e) => refuse(channel, event, &e),
        },
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

/// Read the whole body within the cap into a [`Request`].
async fn read(
    app: &App,
    channel: &dyn Channel,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> Result<Request, (Reply, Outcome)> {
    let cap = app.config.server.max_body_bytes;
    let too_large = || {
        (
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
    let body = match Limited::new(body, cap).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => {
            return Err((
                channel.render_error(StatusCode::BAD_REQUEST, "could not read body\n"),
                Outcome::BadRequest,
            ));
        }
    };
    Ok(Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        peer: peer.ip(),
    })
}

fn refuse(channel: &dyn Channel, event: Event, e: &ChannelError) -> (Reply, Outcome) {
    tracing::warn!(channel = channel.name(), event = event.as_str(), reason = %e, "webhook refused");
    match e {
        ChannelError::BadRequest(reason) => (
            channel.render_error(StatusCode::BAD_REQUEST, &format!("{reason}\n")),
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
