//! The admin listener: private, for operators and their tools.
//!
//! - `GET /metrics` — every metric in the Prometheus text format.
//! - `GET /healthz` — 200 while the process runs.
//! - `GET /readyz` — 200 when the store answers, flows are loaded and the
//!   gateway is not draining; 503 with the reason otherwise. Load balancers
//!   use it to stop sending traffic during a shutdown or a store outage.
//! - `GET /` — the status page, and `GET /cases.json` — open cases (see
//!   [`super::status`], which also says who may see them).
//! - `GET /console`, `POST /console/sms` — the development sink's page,
//!   only with a `console` channel ([`super::console`]); the status page's
//!   access rule applies (a bearer token when one is set, or off a
//!   loopback listener).
//! - `POST /test-sms?lawyer=aida` — send that lawyer the welcome SMS
//!   (`hotline test-sms` for a memory-store gateway): 202, 404 for a name
//!   the roster lacks, 503 without dispatch or when the store fails.
//!   Authorized by [`super::admin_auth::authorize`] (a bearer token; in
//!   production one must be set).
//! - `POST /reload` — re-read flows, roster, phones and lawyers' texts
//!   ([`crate::reload`]), as `SIGHUP` does: 200 with the new generation,
//!   422 with the problems when rejected (the running set stays), 401/403
//!   as `/test-sms`. Another method on either gets 405 (`Allow: POST`).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::Response;
use crate::app::App;
use crate::dispatch::onboarding::WelcomeError;

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Handle one admin request.
pub async fn handle(app: App, req: http::Request<Incoming>) -> Response {
    if super::console::is_console(req.uri().path()) {
        // The console shows numbers, locations and every SMS, and takes
        // SMS as any lawyer: the status pages' rule, token and all.
        if let Some(refused) = super::status::refusal(&app.config, req.headers()) {
            return refused;
        }
        return super::console::handle(app, req).await;
    }
    if req.method() == Method::POST && req.uri().path() == "/test-sms" {
        return test_sms(&app, &req).await;
    }
    if req.method() == Method::POST && req.uri().path() == "/reload" {
        return reload(app, &req).await;
    }
    if matches!(req.uri().path(), "/reload" | "/test-sms") {
        // A route that takes only POST: 405 for any other method, as
        // every other route answers a wrong method.
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed: use POST\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let m = app.metrics();
            m.sessions_evicted.inc_by(
                app.deps
                    .store
                    .sessions_evicted()
                    .saturating_sub(m.sessions_evicted.get()),
            );
            m.sealed_opened_with_previous_key.inc_by(
                app.deps
                    .privacy
                    .opened_with_previous()
                    .saturating_sub(m.sealed_opened_with_previous_key.get()),
            );
            reply(StatusCode::OK, "text/plain; version=0.0.4", m.render())
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => {
            if app.is_draining() {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "draining\n".into(),
                );
            }
            if app.flows().flows.is_empty() {
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "no flows loaded\n".into(),
                );
            }
            let ping =
                tokio::time::timeout(Duration::from_millis(1000), app.deps.store.ping()).await;
            match ping {
                Ok(Ok(())) => {
                    // Lowered here, never raised: a cluster with a slot
                    // down answers this read while the store watch has
                    // seen the rest fail (`degraded` turns true only 12 s
                    // on); raising it flipped the gauge at every probe.
                    if app.deps.store.degraded() {
                        app.metrics().store_up.set(0);
                    }
                    reply(StatusCode::OK, "text/plain", "ready\n".into())
                }
                _ => {
                    app.metrics().store_up.set(0);
                    app.metrics()
                        .store_errors
                        .with_label_values(&["ping"])
                        .inc();
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "store unavailable\n".into(),
                    )
                }
            }
        }
        _ => super::status::handle(&app, &req).await,
    }
}

/// `POST /reload`: what [`App::reload`] did, as text.
async fn reload(app: App, req: &http::Request<Incoming>) -> Response {
    if let Err(status) = super::admin_auth::authorize(&app.config, req.headers()) {
        tracing::warn!(status = status.as_u16(), "admin request refused");
        return reply(
            status,
            "text/plain",
            super::admin_auth::refusal_body(status),
        );
    }
    tracing::info!("reload requested on the admin listener");
    let report = super::reload_now(app).await;
    let status = if report.applied {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    reply(status, "text/plain; charset=utf-8", report.render())
}

/// `POST /test-sms?lawyer=aida`.
async fn test_sms(app: &App, req: &http::Request<Incoming>) -> Response {
    if let Err(status) = super::admin_auth::authorize(&app.config, req.headers()) {
        tracing::warn!(status = status.as_u16(), "admin request refused");
        return reply(
            status,
            "text/plain",
            super::admin_auth::refusal_body(status),
        );
    }
    let query: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(req.uri().query().unwrap_or("")).unwrap_or_default();
    let Some(lawyer) = query.get("lawyer").filter(|l| !l.is_empty()) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "lawyer= is required\n".into(),
        );
    };
    let Some(d) = app.dispatcher() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "dispatch is not configured\n".into(),
        );
    };
    match d.send_welcome(lawyer).await {
        Ok(id) => reply(
            StatusCode::ACCEPTED,
            "text/plain",
            format!("welcome queued for {id}\n"),
        ),
        Err(WelcomeError::NoLawyer(_)) => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "no such lawyer\n".into(),
        ),
        Err(WelcomeError::Store(e)) => {
            tracing::warn!(error = %e, "welcome not queued: store failed");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "store unavailable\n".into(),
            )
        }
    }
}
