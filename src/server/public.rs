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

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::Response;
use crate::app::App;
use crate::channel::{Channel, ChannelError, Event, Reply, Request};
use crate::metrics::UNKNOWN_CHANNEL;

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
    let path = req.uri().path().to_owned();
    let route = path
        .strip_prefix("/webhooks/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(ch, ev)| Some((ch, Event::parse(ev)?)));
    let Some((channel_name, event)) = route else {
        app.metrics
            .webhook_requests
            .with_label_values(&[UNKNOWN_CHANNEL, "ussd", "not_found"])
            .inc();
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(channel) = app.channels.get(channel_name).cloned() else {
        app.metrics
            .webhook_requests
            .with_label_values(&[UNKNOWN_CHANNEL, event.as_str(), "not_found"])
            .inc();
        if app
            .config
            .disabled_channels
            .iter()
            .any(|c| c == channel_name)
        {
            return plain(StatusCode::NOT_FOUND, "channel is disabled\n");
        }
        return plain(StatusCode::NOT_FOUND, "no such channel\n");
    };
    let name = channel.name().to_owned();
    let count = |outcome: &str| {
        app.metrics
            .webhook_requests
            .with_label_values(&[&name, event.as_str(), outcome])
            .inc();
    };
    let Some(methods) = channel.methods(event) else {
        count("not_found");
        return plain(
            StatusCode::NOT_FOUND,
            "this channel does not take this event\n",
        );
    };
    if !methods.contains(req.method()) {
        count("method_not_allowed");
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    if let Err(not_until) = app.ip_limiter.check_key(&peer.ip()) {
        count("rate_limited");
        app.metrics.ip_limited.inc();
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
    let (reply, outcome) = match result {
        Ok(x) => x,
        Err(_) => (
            channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "timed out\n"),
            "timeout",
        ),
    };
    count(outcome);
    app.metrics
        .webhook_duration
        .with_label_values(&[&name, event.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response(reply)
}

/// Read the body (capped), authenticate, parse, handle.
async fn serve(
    app: &App,
    channel: &dyn Channel,
    event: Event,
    req: http::Request<Incoming>,
    peer: SocketAddr,
) -> (Reply, &'static str) {
    let cap = app.config.server.max_body_bytes;
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return (
            channel.render_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
            "too_large",
        );
    }
    let body = match Limited::new(body, cap).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return (
                channel.render_error(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
                "too_large",
            );
        }
        Err(_) => {
            return (
                channel.render_error(StatusCode::BAD_REQUEST, "could not read body\n"),
                "bad_request",
            );
        }
    };
    let request = Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        peer: peer.ip(),
    };
    if channel.authenticate(&request).is_err() {
        tracing::warn!(
            channel = channel.name(),
            event = event.as_str(),
            "webhook refused: authentication failed"
        );
        return (
            channel.render_error(StatusCode::FORBIDDEN, "forbidden\n"),
            "forbidden",
        );
    }
    match event {
        Event::Ussd => match channel.parse_ussd(&request) {
            Ok(ussd) => {
                let channel_cfg = app
                    .config
                    .channels
                    .iter()
                    .find(|c| c.name == channel.name());
                let flow =
                    channel_cfg.map_or(app.config.flows.default.as_str(), |c| c.flow.as_str());
                let session_id = ussd.session_id.clone();
                let answer = app.conversations.ussd(channel.name(), flow, ussd).await;
                if answer.end {
                    // A last screen may have queued a lawyer's offer: send it now.
                    app.outbox_notify.notify_one();
                }
                (
                    channel.render_ussd_in_session(&session_id, &answer.text, answer.end),
                    answer.outcome,
                )
            }
            Err(e) => refuse(channel, event, &e),
        },
        Event::Sms => match channel.parse_sms(&request) {
            Ok(messages) => {
                let mut outcome = "ok";
                for msg in &messages {
                    // A lawyer's SMS is a command; it never reaches a flow.
                    let lawyer = app
                        .dispatcher
                        .as_ref()
                        .and_then(|d| Some((d, d.lawyer_for(&msg.from)?)));
                    let result = match lawyer {
                        Some((d, lawyer)) => {
                            d.command(app, channel.name(), lawyer, &msg.text).await
                        }
                        None => app.conversations.sms(channel.name(), msg).await.outcome,
                    };
                    if result != "ok" {
                        outcome = result;
                    }
                }
                app.outbox_notify.notify_one();
                if outcome == "store_unavailable" {
                    // The aggregator's retry is the only copy of her message.
                    (
                        channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "try again later\n"),
                        outcome,
                    )
                } else {
                    (channel.render_ack(event), outcome)
                }
            }
            Err(e) => refuse(channel, event, &e),
        },
        Event::Status => match channel.parse_status(&request) {
            Ok(reports) => {
                match crate::outbox::worker::on_status(app, channel.name(), reports).await {
                    Ok(()) => (channel.render_ack(event), "ok"),
                    Err(_) => (
                        channel.render_error(StatusCode::SERVICE_UNAVAILABLE, "try again later\n"),
                        "store_unavailable",
                    ),
                }
            }
            Err(e) => refuse(channel, event, &e),
        },
    }
}

fn refuse(channel: &dyn Channel, event: Event, e: &ChannelError) -> (Reply, &'static str) {
    tracing::warn!(channel = channel.name(), event = event.as_str(), reason = %e, "webhook refused");
    match e {
        ChannelError::BadRequest(reason) => (
            channel.render_error(StatusCode::BAD_REQUEST, &format!("{reason}\n")),
            "bad_request",
        ),
        ChannelError::Forbidden => (
            channel.render_error(StatusCode::FORBIDDEN, "forbidden\n"),
            "forbidden",
        ),
        ChannelError::NotSupported => (
            channel.render_error(
                StatusCode::NOT_FOUND,
                "this channel does not take this event\n",
            ),
            "not_found",
        ),
    }
}
