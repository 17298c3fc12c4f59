//! The admin listener's pages for people: `GET /` (the status page) and
//! `GET /cases.json` (what `hotline cases` reads from a gateway on the
//! embedded store).
//!
//! The status page is one server-rendered HTML document: no scripts, no
//! external assets, a strict `Content-Security-Policy` (`default-src
//! 'none'; style-src 'unsafe-inline'`), refreshed every 15 s by a `<meta>`
//! tag, readable on a phone. It shows whether dispatch is on, each
//! channel's health (last success, last failure and why, messages this
//! instance holds), open cases by city and age, who is on call now and
//! next per city (and who of its lawyers sent `OFF`: names only), coverage gaps in the next 14 days, the store and the
//! spool, the version and the config generation — and which access mode
//! it is in.
//!
//! Access: in a production configuration ([`Config::is_production`]), on a
//! non-loopback admin listener, or whenever `HOTLINE_ADMIN_TOKEN` is set,
//! both (and the development console, [`super::console`]) need `Authorization: Bearer <token>` (compared in constant time);
//! production without a token set serves them to nobody (403). Only the
//! development default on loopback answers without one.
//!
//! Cases are shown as [`crate::dispatch::board`] rows: code, city, age,
//! level, lawyers' names — never a number, a location or a callback.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use jiff::Timestamp;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Response;
use crate::app::App;
use crate::config::{ADMIN_TOKEN_VAR, Config};
use crate::dispatch::board::{self, Board, CaseRow, Filter};
use crate::dispatch::lifecycle::Status;
use crate::dispatch::roster::Roster;
use crate::outbox::health::{Health, HeldCount};

/// Seconds between the page's refreshes.
pub const REFRESH_SECS: u32 = 15;
/// How far ahead the page looks for coverage gaps.
const GAP_HOURS: u32 = 14 * 24;
/// The page's security policy: nothing but its own inline style.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Answer a request for a page beyond `/metrics`, `/healthz`, `/readyz`.
pub async fn handle(app: &App, req: &http::Request<hyper::body::Incoming>) -> Response {
    if let Some(refused) = refusal(&app.config, req.headers()) {
        return refused;
    }
    match req.uri().path() {
        "/" => page(app).await,
        "/cases.json" => cases_json(app, req.uri().query().unwrap_or("")).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The answer to a request that may not see the pages (`None`: it may).
pub(super) fn refusal(config: &Config, headers: &http::HeaderMap) -> Option<Response> {
    if !config.admin_token_required() {
        return None;
    }
    let Some(token) = &config.server.admin_token else {
        // Say the true reason: a production configuration, or (in a
        // development one) an admin listener others can reach.
        let why = if config.is_production() {
            "this is a production configuration".to_owned()
        } else {
            format!(
                "the admin listener ({}) is not on loopback",
                config.server.admin_listen
            )
        };
        return Some(text(
            StatusCode::FORBIDDEN,
            &format!("{why}: set {ADMIN_TOKEN_VAR} to use the status pages\n"),
        ));
    };
    let given = super::admin_auth::presented(headers);
    if bool::from(given.as_bytes().ct_eq(token.0.as_bytes())) {
        return None;
    }
    let mut r = text(StatusCode::UNAUTHORIZED, "bearer token required\n");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hotline admin\""),
    );
    Some(r)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

fn text(status: StatusCode, body: &str) -> Response {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

/// `?all=1&city=osh`.
#[derive(Debug, Default, Deserialize)]
struct CasesQuery {
    all: Option<String>,
    city: Option<String>,
}

async fn read_board(app: &App, filter: &Filter) -> Result<Board, String> {
    let deps = &app.deps;
    let dispatcher = app.dispatcher();
    let roster = dispatcher.as_ref().map(|d| &d.roster);
    board::collect(
        deps.store.as_ref(),
        &deps.privacy,
        roster,
        filter,
        deps.clock.now_ms(),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "cases could not be read for the admin pages");
        "the store could not be read".to_owned()
    })
}

async fn cases_json(app: &App, query: &str) -> Response {
    let Ok(q) = serde_urlencoded::from_str::<CasesQuery>(query) else {
        return text(StatusCode::BAD_REQUEST, "bad query\n");
    };
    let filter = Filter {
        all: q.all.is_some_and(|v| v == "1" || v == "true"),
        city: q.city.filter(|c| !c.is_empty()),
    };
    match read_board(app, &filter).await {
        Ok(b) => match serde_json::to_string(&b) {
            Ok(json) => respond(StatusCode::OK, "application/json", json),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n"),
        },
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &format!("{e}\n")),
    }
}

/// One channel on the page.
struct ChannelView {
    name: String,
    health: Health,
    held: HeldCount,
}

/// Everything the page shows, gathered before rendering.
struct View<'a> {
    now_ms: u64,
    config: &'a Config,
    generation: u64,
    roster: Option<&'a Roster>,
    store_kind: &'static str,
    store_up: bool,
    spool_pending: Option<usize>,
    /// Inbound SMS kept while the store was down.
    inbox_pending: Option<usize>,
    offline_codes: Option<usize>,
    channels: Vec<ChannelView>,
    board: Result<Board, String>,
    /// Lawyers off call (ids), and whether the store was read for it now
    /// (else: as this instance last read it).
    off: (BTreeSet<String>, bool),
}

async fn page(app: &App) -> Response {
    let now_ms = app.deps.clock.now_ms();
    let ping = tokio::time::timeout(Duration::from_millis(1000), app.deps.store.ping()).await;
    let health = app.outbox.health();
    let held = health.held(now_ms);
    let mut channels: Vec<ChannelView> = health
        .snapshot()
        .into_iter()
        .map(|(name, h)| ChannelView {
            held: held.get(&name).copied().unwrap_or_default(),
            name,
            health: h,
        })
        .collect();
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    let dispatcher = app.dispatcher();
    let off = match &dispatcher {
        Some(d) => {
            let read = tokio::time::timeout(Duration::from_millis(1000), d.refresh_off()).await;
            (d.off_set(), matches!(read, Ok(Ok(()))))
        }
        None => (BTreeSet::new(), true),
    };
    let view = View {
        now_ms,
        config: &app.config,
        generation: app.config_generation(),
        roster: dispatcher.as_deref().map(|d| &d.roster),
        store_kind: app.deps.store.kind(),
        store_up: matches!(ping, Ok(Ok(()))),
        spool_pending: app.spool.as_ref().map(|s| s.waiting()),
        inbox_pending: app.spool.as_ref().map(|s| s.inbox_pending()),
        offline_codes: app.codes.as_ref().map(|c| c.ready()),
        channels,
        board: read_board(app, &Filter::default()).await,
        off,
    };
    respond(StatusCode::OK, "text/html; charset=utf-8", render(&view))
}

/// Escape text for HTML.
fn esc(s: &str) -> String {
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

fn ago(now_ms: u64, at_ms: u64) -> String {
    format!(
        "{} ago",
        board::duration(now_ms.saturating_sub(at_ms) / 1000)
    )
}

fn local(t: Timestamp, roster: &Roster, city: &str) -> String {
    let tz = roster
        .city(city)
        .map_or(jiff::tz::TimeZone::UTC, |c| c.time_zone.clone());
    t.to_zoned(tz).strftime("%a %d %b %H:%M").to_string()
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,sans-serif;margin:0;padding:10px 12px;color:#111;background:#fafafa;max-width:62em}\
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .3em;border-bottom:1px solid #ccc}\
h3{font-size:1em;margin:.8em 0 .2em}.mode{padding:6px 8px;border-radius:4px;background:#eef}\
.prod{background:#fee}.ok{color:#075e07;font-weight:600}.bad{color:#a00;font-weight:600}\
.muted{color:#666}table{border-collapse:collapse;width:100%;font-size:.92em}\
td,th{border-bottom:1px solid #ddd;padding:4px 6px 4px 0;text-align:left;vertical-align:top}\
.wrap{overflow-x:auto}dl{margin:0}dt{float:left;clear:left;width:9em;color:#555}dd{margin:0 0 2px 9.5em}";

/// The whole page.
fn render(v: &View<'_>) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <title>hotline status</title><style>{STYLE}</style></head><body>\
         <h1>hotline status</h1>"
    );
    summary(&mut h, v);
    channels(&mut h, v);
    cases(&mut h, v);
    on_call(&mut h, v);
    let _ = write!(
        h,
        "<p class=\"muted\">Refreshes every {REFRESH_SECS} s. Cases show code, city, age, level and lawyers only.</p></body></html>"
    );
    h
}

fn summary(h: &mut String, v: &View<'_>) {
    let c = v.config;
    let (class, mode) = if c.is_production() {
        let token = if c.server.admin_token.is_some() {
            "bearer token required"
        } else {
            "no HOTLINE_ADMIN_TOKEN set: pages refused"
        };
        ("mode prod", format!("Production mode — {token}."))
    } else if c.admin_token_required() {
        (
            "mode prod",
            "Development configuration — bearer token required.".to_owned(),
        )
    } else {
        (
            "mode",
            "Development mode — loopback admin listener, no token asked.".to_owned(),
        )
    };
    let yes_no = |b: bool, yes: &str, no: &str| {
        if b {
            format!("<span class=\"ok\">{yes}</span>")
        } else {
            format!("<span class=\"bad\">{no}</span>")
        }
    };
    let _ = write!(
        h,
        "<p class=\"{class}\">{}</p><dl><dt>Dispatch</dt><dd>{}</dd><dt>Store</dt><dd>{} {}</dd>",
        esc(&mode),
        yes_no(
            v.roster.is_some(),
            "on",
            "off (cases are recorded, offered to nobody)"
        ),
        esc(v.store_kind),
        yes_no(v.store_up, "up", "DOWN"),
    );
    match v.spool_pending {
        Some(n) => {
            let _ = write!(
                h,
                "<dt>Spool</dt><dd>{}</dd>",
                yes_no(
                    n == 0,
                    "empty",
                    &format!("{n} case(s) waiting for the store")
                )
            );
        }
        None => h.push_str("<dt>Spool</dt><dd class=\"muted\">none (embedded store)</dd>"),
    }
    if let Some(n) = v.inbox_pending.filter(|n| *n > 0) {
        let _ = write!(
            h,
            "<dt>Inbox</dt><dd>{n} SMS kept while the store was down, not yet handled</dd>"
        );
    }
    if let Some(n) = v.offline_codes {
        let _ = write!(h, "<dt>Offline codes</dt><dd>{n}</dd>");
    }
    let _ = write!(
        h,
        "<dt>Version</dt><dd>{}</dd><dt>Config</dt><dd>generation {}</dd><dt>Now (UTC)</dt><dd>{}</dd></dl>",
        crate::LONG_VERSION,
        v.generation,
        board::utc(v.now_ms),
    );
}

fn channels(h: &mut String, v: &View<'_>) {
    h.push_str("<h2>Channels</h2>");
    for c in &v.channels {
        let state = if c.health.is_up() {
            "<span class=\"ok\">up</span>".to_owned()
        } else {
            format!(
                "<span class=\"bad\">down</span> ({} failures in a row)",
                c.health.failures_in_a_row
            )
        };
        let ok = c
            .health
            .last_ok_ms
            .map_or_else(|| "never (since start)".to_owned(), |t| ago(v.now_ms, t));
        let failure = c.health.last_failure.as_ref().map_or_else(
            || "none".to_owned(),
            |(t, why)| format!("{} — {}", ago(v.now_ms, *t), esc(why)),
        );
        let held = match c.held.oldest_created_ms {
            Some(t) if c.held.count > 0 => {
                format!("{} (oldest queued {})", c.held.count, ago(v.now_ms, t))
            }
            _ => "0".to_owned(),
        };
        let _ = write!(
            h,
            "<h3>{} — {state}</h3><dl><dt>Last success</dt><dd>{ok}</dd>\
             <dt>Last failure</dt><dd>{failure}</dd><dt>Held here</dt><dd>{held}</dd></dl>",
            esc(&c.name)
        );
    }
}

fn level(r: &CaseRow) -> String {
    match r.status {
        Status::Accepted => "accepted".to_owned(),
        _ => {
            let kind = r.level_kind.as_deref().unwrap_or("?").replace('_', " ");
            let passes = r.passes.map_or(String::new(), |p| format!("/{p}"));
            format!(
                "{} · level {} · pass {}{passes}",
                esc(&kind),
                r.level,
                r.pass
            )
        }
    }
}

fn who(id: &str, name: Option<&str>) -> String {
    esc(name.unwrap_or(id))
}

fn cases(h: &mut String, v: &View<'_>) {
    h.push_str("<h2>Open cases</h2>");
    // An offer is listed when it is planned; while its channel cannot send
    // it waits in the outbox, and the lawyer has not got it yet.
    for c in v
        .channels
        .iter()
        .filter(|c| !c.health.is_up() || c.held.count > 0)
    {
        let held = match c.held.oldest_created_ms {
            Some(t) if c.held.count > 0 => {
                format!(
                    "{} SMS held, the oldest queued {}",
                    c.held.count,
                    ago(v.now_ms, t)
                )
            }
            _ => "down".to_owned(),
        };
        let _ = write!(
            h,
            "<p class=\"bad\">Channel {} is not sending ({held}): an offer below may not have reached the lawyer's phone yet, nor a confirmation the woman's.</p>",
            esc(&c.name)
        );
    }
    let b = match &v.board {
        Ok(b) => b,
        Err(e) => {
            let _ = write!(h, "<p class=\"bad\">{}</p>", esc(e));
            return;
        }
    };
    if b.cases.is_empty() {
        h.push_str("<p>No open cases.</p>");
    }
    let mut city: Option<&str> = None;
    for r in &b.cases {
        if city != Some(r.city.as_str()) {
            if city.is_some() {
                h.push_str("</table></div>");
            }
            city = Some(&r.city);
            let n = b.cases.iter().filter(|c| c.city == r.city).count();
            let _ = write!(
                h,
                "<h3>{} ({n})</h3><div class=\"wrap\"><table><tr><th>Code</th><th>Age</th><th>Level</th><th>Offered to</th><th>Accepted</th></tr>",
                esc(&r.city)
            );
        }
        let offers: Vec<String> = r
            .offers
            .iter()
            .map(|o| {
                let declined = match (o.declined, o.undelivered) {
                    (_, true) => " (undelivered)",
                    (true, false) => " (declined)",
                    (false, false) => "",
                };
                format!(
                    "{} {}{declined}",
                    who(&o.lawyer, o.name.as_deref()),
                    ago(v.now_ms, o.at_ms)
                )
            })
            .collect();
        let accepted = match (&r.accepted_by, r.accept_secs) {
            (Some(id), Some(s)) => format!(
                "{} after {}",
                who(id, r.accepted_by_name.as_deref()),
                board::duration(s)
            ),
            _ => "—".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{accepted}</td></tr>",
            esc(&r.code),
            board::duration(r.age_secs),
            level(r),
            if offers.is_empty() {
                "nobody yet".to_owned()
            } else {
                offers.join("<br>")
            },
        );
    }
    if city.is_some() {
        h.push_str("</table></div>");
    }
    if b.unreadable > 0 {
        let _ = write!(
            h,
            "<p class=\"bad\">{}</p>",
            esc(&board::unreadable_note(b.unreadable))
        );
    }
    if b.truncated {
        let _ = write!(
            h,
            "<p class=\"bad\">Only the first {} cases were read.</p>",
            board::MAX_READ
        );
    }
}

fn on_call(h: &mut String, v: &View<'_>) {
    h.push_str("<h2>On call</h2>");
    let Some(roster) = v.roster else {
        h.push_str("<p class=\"muted\">Dispatch is off: no roster.</p>");
        return;
    };
    let now = board::timestamp(v.now_ms);
    let (off, fresh) = &v.off;
    let names = |ids: &[crate::dispatch::roster::LawyerId]| -> String {
        let v: Vec<String> = ids
            .iter()
            .map(|id| {
                let name = who(
                    id.as_str(),
                    roster.lawyer(id.as_str()).map(|l| l.name.as_str()),
                );
                if off.contains(id.as_str()) {
                    format!("{name} <span class=\"bad\">(off call)</span>")
                } else {
                    name
                }
            })
            .collect();
        if v.is_empty() {
            "<span class=\"bad\">nobody</span>".to_owned()
        } else {
            v.join(", ")
        }
    };
    for city in board::full_cities(roster) {
        let oc = roster.on_call_at(city, now);
        let tz = roster
            .city(city)
            .map_or("UTC", |c| c.time_zone_name.as_str());
        let _ = write!(
            h,
            "<h3>{}</h3><dl><dt>Now</dt><dd>{}</dd><dt>Next</dt><dd>{}{}</dd>",
            esc(city),
            names(&oc.now),
            names(&oc.next),
            oc.next_from.map_or(String::new(), |t| format!(
                " from {} <span class=\"muted\">({})</span>",
                local(t, roster, city),
                esc(tz)
            )),
        );
        let off_here: Vec<String> = roster
            .lawyers()
            .filter(|l| off.contains(l.id.as_str()) && l.cities.iter().any(|c| c == city))
            .map(|l| who(l.id.as_str(), Some(&l.name)))
            .collect();
        let stale = if *fresh {
            ""
        } else {
            " <span class=\"muted\">(store unreadable: as last read)</span>"
        };
        if off_here.is_empty() {
            let _ = write!(h, "<dt>Off call</dt><dd class=\"muted\">nobody{stale}</dd>");
        } else {
            let _ = write!(
                h,
                "<dt>Off call</dt><dd>{} <span class=\"muted\">(sent OFF; ON brings her back)</span>{stale}</dd>",
                off_here.join(", ")
            );
        }
        let gaps = roster.gaps(city, now, GAP_HOURS);
        if gaps.is_empty() {
            h.push_str("<dt>Gaps (14 days)</dt><dd class=\"ok\">none</dd></dl>");
        } else {
            let list: Vec<String> = gaps
                .iter()
                .map(|(a, b)| format!("{} – {}", local(*a, roster, city), local(*b, roster, city)))
                .collect();
            let _ = write!(
                h,
                "<dt>Gaps (14 days)</dt><dd class=\"bad\">{}</dd></dl>",
                list.join("<br>")
            );
        }
    }
}
