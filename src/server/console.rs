//! `/console` on the admin listener: the development sink's page.
//!
//! - `GET /console` — every SMS the `console` channel kept (newest first),
//!   server-rendered HTML with no external assets and a strict
//!   Content-Security-Policy, clearly marked as a development sink; and a
//!   form to type an SMS back as one of the roster's lawyers (or any
//!   number).
//! - `GET /console/messages` — the same messages as plain text, oldest
//!   first, one a line (`#1 to +447700900101 (Aigul (demo)): …`), for curl.
//! - `POST /console/sms` — that form (`from`: a lawyer's id or a number in
//!   international form; `text`). It is handed to
//!   [`crate::gateway::Gateway::sms`] as an inbound SMS on the console
//!   channel — the path an aggregator's webhook takes, so a lawyer's
//!   `OK 4821` accepts the case — and answered `303` back to the page. It is
//!   counted like a webhook (`hotline_webhook_requests_total{channel =
//!   the console's name, event = "sms"}`); a bad form gets 400 with a short
//!   reason, a cross-site post 403, and changes nothing.
//!
//! They answer 404 when no console channel is configured (a production
//! configuration never has one). Who may use them is the status page's
//! rule ([`super::status`]): with `HOTLINE_ADMIN_TOKEN` set, or on an admin
//! listener off loopback, `Authorization: Bearer <token>` (401 without;
//! 403 with no token set), checked before anything else. Nothing here
//! logs a number or a text.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::Response;
use crate::app::App;
use crate::channel::SmsIn;
use crate::channel::console::{Console, Sent};
use crate::outcome::Outcome;
use crate::phone::PhoneNumber;

/// Largest form accepted.
const MAX_FORM_BYTES: usize = 4096;
/// Longest SMS that can be typed (three concatenated GSM-7 parts).
const MAX_TEXT_CHARS: usize = 459;

/// The page allows its own inline style (by hash) and forms posting back
/// to this listener; nothing else.
const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:1em auto}\
.dev{background:#fd0;padding:.5em;font-weight:bold}\
td,th{border-bottom:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}";

/// Whether this request is for the console page.
pub fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Handle a request under `/console`.
pub async fn handle(app: App, req: http::Request<Incoming>) -> Response {
    let Some((name, console)) = app
        .channels
        .iter()
        .find_map(|(n, c)| c.console().map(|k| (n.clone(), k)))
    else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    match (req.method().clone(), req.uri().path()) {
        (Method::GET | Method::HEAD, "/console") => page(&app, &name, console),
        (Method::GET | Method::HEAD, "/console/messages") => listing(&app, console),
        (Method::POST, "/console/sms") => {
            let outcome = inject(&app, &name, req).await;
            app.metrics()
                .webhook_requests
                .with_label_values(&[name.as_str(), "sms", outcome_of(&outcome).as_str()])
                .inc();
            match outcome {
                Ok(()) => {
                    let mut r = text(StatusCode::SEE_OTHER, "");
                    r.headers_mut()
                        .insert(header::LOCATION, HeaderValue::from_static("/console"));
                    r
                }
                Err((status, why)) => text(status, &format!("{why}\n")),
            }
        }
        (_, "/console" | "/console/sms" | "/console/messages") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn outcome_of(r: &Result<(), (StatusCode, &'static str)>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err((StatusCode::FORBIDDEN, _)) => Outcome::Forbidden,
        Err((StatusCode::SERVICE_UNAVAILABLE, _)) => Outcome::StoreUnavailable,
        Err((StatusCode::TOO_MANY_REQUESTS, _)) => Outcome::RateLimited,
        Err(_) => Outcome::BadRequest,
    }
}

#[derive(Deserialize)]
struct Form {
    from: String,
    text: String,
}

/// Check and inject one typed SMS.
async fn inject(
    app: &App,
    channel: &str,
    req: http::Request<Incoming>,
) -> Result<(), (StatusCode, &'static str)> {
    if cross_site(req.headers()) {
        return Err((StatusCode::FORBIDDEN, "cross-site form posts are refused"));
    }
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?
        .to_bytes();
    let form: Form = serde_urlencoded::from_bytes(&body)
        .map_err(|_| (StatusCode::BAD_REQUEST, "the form needs from and text"))?;
    let text = form.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err((StatusCode::BAD_REQUEST, "text must be 1 to 459 characters"));
    }
    let from = sender(app, form.from.trim()).ok_or((
        StatusCode::BAD_REQUEST,
        "from must be a lawyer's id or a number like +447700900101",
    ))?;
    let msg = SmsIn {
        message_id: Some(format!("console-in-{:016x}", rand::random::<u64>())),
        from,
        to: channel.to_owned(),
        text: text.to_owned(),
    };
    match app.gateway.sms(channel, &[msg]).await {
        Outcome::StoreUnavailable => Err((StatusCode::SERVICE_UNAVAILABLE, "store unavailable")),
        // Not handled: said so, and counted as such (Redis Cluster audit:
        // a dropped OK was shown as sent and counted `ok`).
        Outcome::RateLimited => Err((
            StatusCode::TOO_MANY_REQUESTS,
            "too many messages from this number: not handled; try again in a minute",
        )),
        _ => Ok(()),
    }
}

/// A lawyer's id from the roster, or a number in international form.
fn sender(app: &App, from: &str) -> Option<PhoneNumber> {
    let lawyer = app.dispatcher().and_then(|d| {
        d.roster
            .lawyers()
            .find(|l| l.id.as_str() == from)
            .map(|l| l.phone.clone())
    });
    lawyer.or_else(|| {
        from.starts_with('+')
            .then(|| PhoneNumber::parse_international(from).ok())
            .flatten()
    })
}

/// A browser's post from another site (the admin listener has no login;
/// this keeps a web page elsewhere from typing into it).
fn cross_site(h: &http::HeaderMap) -> bool {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin.split("://").nth(1) != Some(host),
        _ => false,
    }
}

fn page(app: &App, channel: &str, console: &Console) -> Response {
    let mut html = String::with_capacity(8192);
    html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hotline console (development sink)</title><style>");
    html.push_str(STYLE);
    html.push_str("</style></head><body>");
    html.push_str(&format!(
        "<p class=\"dev\">DEVELOPMENT SINK — channel {:?}: nothing here was sent to a phone. A production configuration refuses this channel.</p>",
        escape(channel)
    ));
    html.push_str("<h1>Console</h1><h2>Answer as a lawyer</h2><form method=\"post\" action=\"/console/sms\"><label>From <select name=\"from\">");
    if let Some(d) = app.dispatcher() {
        for l in d.roster.lawyers() {
            html.push_str(&format!(
                "<option value=\"{}\">{} ({})</option>",
                escape(l.id.as_str()),
                escape(&l.name),
                escape(l.phone.as_str())
            ));
        }
    }
    html.push_str("</select></label> <label>SMS <input name=\"text\" size=\"30\" placeholder=\"OK 4821\" required></label> <button>Send</button></form>");
    html.push_str("<h2>Sent (newest first)</h2><table><tr><th>#</th><th>to</th><th>text</th></tr>");
    let mut messages = console.messages();
    messages.reverse();
    for m in &messages {
        html.push_str(&row(app, m));
    }
    html.push_str("</table></body></html>");
    let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", html);
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The messages as text, oldest first.
fn listing(app: &App, console: &Console) -> Response {
    let mut out = String::from("# development sink: nothing here was sent to a phone\n");
    for m in console.messages() {
        let who = lawyer_name(app, &m.to).map_or_else(String::new, |n| format!(" ({n})"));
        out.push_str(&format!(
            "#{} to {}{who}: {}\n",
            m.seq,
            m.to.as_str(),
            m.text
        ));
    }
    let mut r = text(StatusCode::OK, &out);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn lawyer_name(app: &App, phone: &PhoneNumber) -> Option<String> {
    let d = app.dispatcher()?;
    d.roster.lawyer_by_phone(phone).map(|l| l.name.clone())
}

/// One sent message; a lawyer is named beside her number.
fn row(app: &App, m: &Sent) -> String {
    let who = lawyer_name(app, &m.to).map_or_else(String::new, |n| format!(" — {}", escape(&n)));
    format!(
        "<tr><td>{}</td><td>{}{who}</td><td>{}</td></tr>",
        m.seq,
        escape(m.to.as_str()),
        escape(&m.text)
    )
}

fn style_hash() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()))
}

/// HTML-escape text (element content and attribute values).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: &str) -> Response {
    reply(status, "text/plain; charset=utf-8", body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn refuses_cross_site_posts() {
        let mut h = http::HeaderMap::new();
        assert!(!cross_site(&h), "curl sends neither header");
        h.insert("host", HeaderValue::from_static("127.0.0.1:9090"));
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:9090"));
        assert!(!cross_site(&h));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }
}
