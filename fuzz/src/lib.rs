//! What each fuzz target does with its input: one function per target,
//! shared by the `cargo fuzz` targets (`fuzz/fuzz_targets/*.rs`) and by the
//! plain test that replays every corpus file (`tests/fuzz_corpus.rs`, which
//! includes this file as a module), so a crash found once stays fixed.
//!
//! Every function must return normally for any input; a panic — in the
//! gateway's code or in an invariant checked here — is a crash.
//!
//! Channel inputs are written like an HTTP request, so seeds stay readable:
//!
//! ```text
//! POST /webhooks/africastalking/ussd?secret=s3cret
//! Content-Type: application/x-www-form-urlencoded
//! X-Peer: 10.1.2.3
//!
//! sessionId=ATUid_1&serviceCode=*384*123#&phoneNumber=+996555123456&text=1*2
//! ```
//!
//! The path's channel segment picks one of the target's configured channels
//! (an unknown one: the first); `X-Peer` sets the client address. Whatever
//! the event segment says, the request goes through `authenticate`,
//! `parse_ussd`, `parse_sms` and `parse_status` and the renderers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hotline::channel::{self, Channel, ChannelError, Request, UssdInput};
use hotline::dispatch::commands::{self, Command};
use hotline::flow::engine::{self, Caller, MAX_INVALID, State};
use hotline::flow::{Flow, Node};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The shipped flow's text.
const SHIPPED_FLOW: &str = include_str!("../../flows/legal_help.toml");

/// The secret every shared-secret channel here is configured with (seeds
/// carry it, so the fuzzer gets past authentication).
pub const SECRET: &str = "s3cret";

/// Channels the fuzz targets parse with: the shipped kinds, each with a
/// secret, and the configurable USSD adapter in several shapes.
const CHANNELS: &str = r##"
[flows]
dir = "flows"
default = "legal_help"
fallback_phone = "112"

[[channels]]
name = "africastalking"
kind = "africastalking"
secret_env = "F_SECRET"

[[channels]]
name = "twilio"
kind = "twilio"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token_env = "F_TOKEN"
from = "+12025550143"
public_url = "https://hotline.test"

[[channels]]
name = "kannel"
kind = "kannel"
secret_env = "F_SECRET"
sendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms"
username = "hotline"
password_env = "F_SECRET"
from = "21212"
public_url = "http://127.0.0.1:8080"

[[channels]]
name = "infobip"
kind = "infobip"
secret_env = "F_SECRET"
base_url = "https://f00z.api.infobip.com"
api_key_env = "F_SECRET"
from = "hotline"
public_url = "https://hotline.test"

[[channels]]
name = "ussd"
kind = "ussd"
secret_env = "F_SECRET"
format = "form"
session_field = "sessionId"
phone_field = "phoneNumber"
text_field = "text"
service_code_field = "serviceCode"
input = "cumulative"
reply = "text"

[[channels]]
name = "ussdjson"
kind = "ussd"
format = "json"
session_field = "session.id"
phone_field = "msisdn"
text_field = "input.text"
service_code_field = "code"
input = "latest"
new_session_field = "type"
new_session_value = "begin"
reply = "json"
reply_text_field = "message"
reply_action_field = "action"
reply_continue_value = "request"
reply_end_value = "end"
reply_session_echo = true

[[channels]]
name = "ussdquery"
kind = "ussd"
allow_ips = ["10.0.0.0/8", "::1"]
format = "query"
session_field = "sid"
phone_field = "from"
text_field = "text"
input = "cumulative"
input_separator = "#"
reply = "json"
reply_text_field = "text"
reply_end_field = "end"
"##;

/// The repository's root, from the fuzz crate (`fuzz/`) or the main crate.
fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("flows").is_dir() {
        here.to_path_buf()
    } else {
        here.join("..")
    }
}

fn channels() -> &'static [Arc<dyn Channel>] {
    static CHANNELS_BUILT: OnceLock<Vec<Arc<dyn Channel>>> = OnceLock::new();
    CHANNELS_BUILT.get_or_init(|| {
        let env: BTreeMap<&str, &str> = [("F_SECRET", SECRET), ("F_TOKEN", "token")]
            .into_iter()
            .collect();
        let (cfg, _) = hotline::config::parse(CHANNELS, "fuzz.toml", Path::new("."), &env)
            .expect("the fuzz channels' config is valid");
        let http = channel::http_client();
        cfg.channels
            .iter()
            .enumerate()
            .map(|(i, c)| channel::build(i, c, "fuzz.toml", &http).expect("channel builds"))
            .collect()
    })
}

/// Which channel kinds a channel target covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// Africa's Talking.
    AfricasTalking,
    /// Twilio.
    Twilio,
    /// Kannel.
    Kannel,
    /// Infobip.
    Infobip,
    /// The configurable USSD adapter (three configurations).
    Ussd,
}

impl Adapter {
    /// Every adapter, in corpus-folder order.
    pub const ALL: [Adapter; 5] = [
        Adapter::AfricasTalking,
        Adapter::Twilio,
        Adapter::Kannel,
        Adapter::Infobip,
        Adapter::Ussd,
    ];

    /// The fuzz target's name (and its corpus folder).
    pub fn target(self) -> &'static str {
        match self {
            Adapter::AfricasTalking => "channel_africastalking",
            Adapter::Twilio => "channel_twilio",
            Adapter::Kannel => "channel_kannel",
            Adapter::Infobip => "channel_infobip",
            Adapter::Ussd => "channel_ussd",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Adapter::AfricasTalking => &["africastalking"],
            Adapter::Twilio => &["twilio"],
            Adapter::Kannel => &["kannel"],
            Adapter::Infobip => &["infobip"],
            Adapter::Ussd => &["ussd", "ussdjson", "ussdquery"],
        }
    }
}

/// Split an HTTP-like input into the request and the channel name its path
/// names.
fn request(data: &[u8]) -> (Request, String) {
    let (head, body) = match find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("POST", first));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let name = path
        .trim_start_matches("/webhooks/")
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let mut headers = HeaderMap::new();
    let mut peer = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim_start();
        if k.eq_ignore_ascii_case("x-peer") {
            peer = v.parse().unwrap_or(peer);
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    let req = Request {
        method,
        path,
        query,
        headers,
        body: Bytes::copy_from_slice(body),
        peer,
    };
    (req, name)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An error's text is fixed and safe to log: it never carries what looks
/// like a phone number from the request.
fn check_error(e: &ChannelError) {
    let text = e.to_string();
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 7, "error text carries a digit run: {text:?}");
    }
}

/// One request through one adapter: authentication, the three parsers and
/// the renderers. Invariants: ids the adapter accepts pass `id_ok`, failure
/// reasons pass `reason_ok`, errors carry no number. Returns how many of
/// the four accepted the request (the corpus test checks that every seed
/// gets somewhere).
pub fn channel(adapter: Adapter, data: &[u8]) -> usize {
    let (req, name) = request(data);
    let names = adapter.names();
    let name = names
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or(names[0]);
    let ch = channels()
        .iter()
        .find(|c| c.name() == name)
        .expect("configured channel");
    let mut accepted = 0;
    match ch.authenticate(&req) {
        Ok(()) => accepted += 1,
        Err(e) => check_error(&e),
    }
    match ch.parse_ussd(&req) {
        Ok(u) => {
            accepted += 1;
            assert!(channel::id_ok(&u.session_id), "session id not checked");
            let text = match &u.input {
                UssdInput::Cumulative(t) => t,
                UssdInput::Latest { text, .. } => text,
            };
            for end in [false, true] {
                let _ = ch.render_ussd_in_session(&u.session_id, text, end);
            }
        }
        Err(e) => check_error(&e),
    }
    match ch.parse_sms(&req) {
        Ok(all) => {
            accepted += 1;
            for m in all {
                if let Some(id) = &m.message_id {
                    assert!(channel::id_ok(id), "sms id not checked");
                }
            }
        }
        Err(e) => check_error(&e),
    }
    match ch.parse_status(&req) {
        Ok(all) => {
            accepted += 1;
            for s in all {
                for id in [&s.provider_id, &s.message_id].into_iter().flatten() {
                    assert!(channel::id_ok(id), "status id not checked");
                }
                if let Some(r) = &s.reason {
                    assert!(channel::reason_ok(r), "reason not checked");
                }
            }
        }
        Err(e) => check_error(&e),
    }
    let body = String::from_utf8_lossy(&req.body);
    let _ = ch.render_error(http::StatusCode::BAD_REQUEST, &body);
    accepted
}

fn shipped_flow() -> &'static Flow {
    static FLOW: OnceLock<Flow> = OnceLock::new();
    FLOW.get_or_init(|| {
        hotline::flow::parse(SHIPPED_FLOW, "flows/legal_help.toml", "112")
            .expect("the shipped flow loads")
            .0
    })
}

/// A caller's country from a selector.
fn caller(sel: &str) -> Caller {
    Caller {
        country: hotline::phone::country_by_iso(sel),
    }
}

/// The engine over the shipped flow. The first line picks the caller's
/// country and a preselected language (`KG ru`, `- -`), or is a stored
/// session as JSON (a hostile or stale one); every further line is one
/// answer. A finished session starts again. Invariants: a session that goes
/// on rests on a screen (menu, input or language) with fewer than
/// `MAX_INVALID` invalid answers, and that screen is not empty.
pub fn engine(data: &[u8]) {
    let flow = shipped_flow();
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let mut now = 1_780_000_000_000_u64;
    let (who, mut step) = if first.starts_with('{') {
        let Ok(state) = serde_json::from_str::<State>(first) else {
            return;
        };
        let who = caller("KG");
        let shown = engine::redisplay(flow, &state, &who);
        let _ = shown;
        (who, engine::step(flow, &state, &who, "1", now))
    } else {
        let mut parts = first.split_whitespace();
        let who = caller(parts.next().unwrap_or("-"));
        let lang = parts.next().filter(|l| *l != "-");
        (who, engine::start(flow, &who, lang, now))
    };
    check_step(flow, &step);
    for input in lines.take(200) {
        now += 7_000;
        step = if step.end {
            engine::start(flow, &who, None, now)
        } else {
            // What the store saves is what the next hop loads.
            let saved = serde_json::to_string(&step.state).expect("state serialises");
            let loaded: State = serde_json::from_str(&saved).expect("state loads back");
            assert_eq!(loaded, step.state);
            engine::step(flow, &loaded, &who, input, now)
        };
        check_step(flow, &step);
    }
}

fn check_step(flow: &Flow, step: &engine::Step) {
    if step.end {
        assert!(step.outcome.is_some(), "an end without an outcome");
        return;
    }
    assert!(step.effects.is_empty(), "effects on a screen that goes on");
    assert!(
        step.state.invalid < MAX_INVALID,
        "too many invalid answers kept"
    );
    assert!(
        matches!(
            flow.node(&step.state.node),
            Some(Node::Menu(_) | Node::Input(_) | Node::Language(_))
        ),
        "session rests on {:?}",
        step.state.node
    );
    assert!(!step.reply.trim().is_empty(), "empty screen");
}

/// The flow loader on any text; a flow that loads is then walked by the
/// engine with a few answers (it must not panic or hang on any valid flow).
pub fn flow_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok((flow, _)) = hotline::flow::parse(&text, "fuzz.toml", "112") else {
        return;
    };
    for country in ["-", "KG", "UA", "GE"] {
        let who = caller(country);
        let mut step = engine::start(&flow, &who, None, 0);
        for input in ["1", "2", "3", "0", "9", "", "x", "+996555123456", "1"] {
            if step.end {
                break;
            }
            step = engine::step(&flow, &step.state, &who, input, 0);
        }
    }
}

/// The roster loader on any text (the phones file resolves in `config/`,
/// where the example phones file is; every `phone_env` holds a number). A roster that loads is asked who is
/// on call, the schedule and its gaps for two days, in every city.
pub fn roster_load(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let base = root().join("config");
    let Ok((roster, _)) = hotline::dispatch::roster::parse(&text, "roster.toml", &base, &AnyPhone)
    else {
        return;
    };
    let at: jiff::Timestamp = "2026-03-29T00:30:00Z".parse().expect("timestamp");
    for city in roster.city_ids() {
        let _ = roster.on_call_at(city, at);
        let _ = roster.next_on_call(city, at);
        let _ = roster.schedule(city, at, 48);
        let _ = roster.gaps(city, at, 48);
        let _ = roster.chain(city);
    }
}

/// An environment where every variable holds a phone number of its own
/// (rosters name lawyers' numbers by `phone_env`).
struct AnyPhone;

impl hotline::config::Env for AnyPhone {
    fn var(&self, name: &str) -> Option<String> {
        let n = name
            .bytes()
            .fold(7_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Some(format!("+996555{:06}", n % 1_000_000))
    }
}

/// The lawyer command parser. Invariant: a code it returns is four to six
/// ASCII digits.
pub fn commands(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (Command::Accept(Some(code))
    | Command::Decline(Some(code))
    | Command::Done {
        code: Some(code), ..
    }) = commands::parse(&text)
    else {
        return;
    };
    assert!(
        (4..=6).contains(&code.len()) && code.chars().all(|c| c.is_ascii_digit()),
        "bad code {code:?}"
    );
}

/// The PROXY protocol header parser. Invariant: a header it accepts is no
/// longer than the bytes it was given, and parsing a prefix of those bytes
/// never accepts a different header.
pub fn proxy_header(data: &[u8]) {
    use hotline::server::proxy_protocol::{Parsed, parse};
    if let Parsed::Done { len, source } = parse(data) {
        assert!(len <= data.len(), "header longer than its input");
        assert_eq!(
            parse(&data[..len]),
            Parsed::Done { len, source },
            "the header alone parses the same"
        );
    }
}
