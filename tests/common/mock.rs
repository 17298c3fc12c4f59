//! A small local HTTP server that stands in for an aggregator's API in
//! tests: it records every request and answers from a script of responses
//! (status, headers, body, optional delay), repeating the last one.
//!
//! Only for what cannot run here (a commercial aggregator's API); it
//! behaves like the documented API, including its errors.
//!
//! One file for both kinds of tests: the integration tests reach it as
//! `common::mock`, the adapters' unit tests as `crate::channel::mock`
//! (`#[path]`), so it is never compiled into the release library.
// Each test binary uses a different part of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Wait this long before answering (a slow aggregator).
    pub delay: Duration,
    /// Before answering, POST this form (address, path, body) and wait for
    /// its answer: a delivery report that overtakes the send's answer.
    pub report_first: Option<(SocketAddr, String, String)>,
}

impl MockResponse {
    /// A response with a status and a body.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        MockResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            report_first: None,
        }
    }

    /// Before answering, POST the form `body` to `path` at `to` (the
    /// gateway's status webhook) and wait for its answer, as an aggregator
    /// whose delivery report comes before its answer to the send. The
    /// report's HTTP status is kept ([`MockServer::reports_answered`]).
    #[must_use]
    pub fn report_first(mut self, to: SocketAddr, path: &str, body: &str) -> Self {
        self.report_first = Some((to, path.to_owned(), body.to_owned()));
        self
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Answer only after `delay`.
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as a form.
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    /// The query string as a form.
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.uri.split_once('?').map_or("", |(_, q)| q);
        serde_urlencoded::from_str(q).unwrap_or_default()
    }

    /// One field of the body form or, failing that, the query.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .chain(self.query())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

struct State {
    script: Vec<MockResponse>,
    next: usize,
    seen: Vec<Recorded>,
    /// The statuses the gateway answered to reports sent first.
    reports: Vec<u16>,
}

/// A running mock API.
#[derive(Clone)]
pub struct MockServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The address.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl MockServer {
    /// Start on a free port with a script of answers.
    pub async fn start(script: Vec<MockResponse>) -> MockServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            script,
            next: 0,
            seen: Vec::new(),
            reports: Vec::new(),
        }));
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockServer {
            url: format!("http://{addr}"),
            addr,
            state,
        }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .clone()
    }

    /// The HTTP statuses of the reports sent before answering
    /// ([`MockResponse::report_first`]), in order.
    pub fn reports_answered(&self) -> Vec<u16> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reports
            .clone()
    }

    /// Replace the script (and restart it from its first answer).
    pub fn set_script(&self, script: Vec<MockResponse>) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.script = script;
        s.next = 0;
    }
}

/// Record one request and answer it from the script.
async fn answer(
    st: Arc<Mutex<State>>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let answer = {
        let mut s = st.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.seen.push(Recorded {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            body,
        });
        let i = s.next.min(s.script.len().saturating_sub(1));
        s.next += 1;
        s.script
            .get(i)
            .cloned()
            .unwrap_or_else(|| MockResponse::new(200, ""))
    };
    if let Some((to, path, body)) = &answer.report_first {
        let status = post_form(*to, path, body).await;
        st.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reports
            .push(status);
    }
    tokio::time::sleep(answer.delay).await;
    let mut r = http::Response::new(Full::new(Bytes::from(answer.body)));
    *r.status_mut() = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// POST a form on a connection of its own; the answer's status (0 when
/// there was none).
async fn post_form(to: SocketAddr, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(to).await.ok()?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}
