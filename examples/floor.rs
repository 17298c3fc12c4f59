//! The floor a USSD hop is measured against (`load-tests/run.sh`): a bare
//! hyper server that does only what no gateway can avoid.
//!
//! - `floor plain ADDR`: read the form body (capped), parse its fields,
//!   answer a `CON` screen. Plain hyper reading the body.
//! - `floor redis ADDR REDIS_URL`: the same, plus the two round trips of a
//!   hotline hop: `EVALSHA` of the gateway's own `begin.lua` (dedupe, rate
//!   limit, load the session: 3 keys) and `commit.lua` (compare-and-set the
//!   session, cache the reply: 7 keys), with the same key layout and a
//!   session blob of the size a sealed session has.
//!
//! Same runtime (multi-threaded tokio), same hyper settings (HTTP/1,
//! `TokioTimer`, header-read timeout) as the gateway. It runs until killed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::net::TcpListener;

const MAX_BODY: usize = 16 * 1024;

#[derive(serde::Deserialize)]
struct Hop {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "phoneNumber")]
    phone: String,
    #[serde(default)]
    text: String,
}

struct Redis {
    conn: ConnectionManager,
    begin: Script,
    commit: Script,
}

type Response = http::Response<Full<Bytes>>;

fn answer(status: u16, body: &'static str) -> Response {
    let mut r = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    r
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// The two scripts with the gateway's argument shapes: no jobs, no small
/// values, no case (an ordinary menu hop).
async fn round_trips(r: &Redis, hop: &Hop) -> redis::RedisResult<()> {
    let bucket = hop
        .phone
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31) + u32::from(b))
        % 16;
    let t = format!("floor:{{{bucket}}}");
    let delivery = format!("{t}:d:{}:{}", hop.session_id, hop.text);
    let session = format!("{t}:s:{}", hop.session_id);
    let hop_suffix = format!(":{}", hop.text);
    let mut conn = r.conn.clone();
    let begun: Value = r
        .begin
        .key(&delivery)
        .key(format!("{t}:r:{}", hop.phone))
        .key(&session)
        .arg(now_ms())
        .arg(60_000 / 30) // 30 a minute,
        .arg(15) // burst 15: the shipped defaults
        .arg(60_000) // the seen window
        .arg(&hop_suffix) // a hop is one of its session's own deliveries
        .invoke_async(&mut conn)
        .await?;
    let expected = match begun {
        Value::Array(v) if v.len() == 3 => match &v[1] {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            _ => "0".to_owned(),
        },
        _ => "0".to_owned(),
    };
    // A sealed session is a few hundred bytes of ciphertext.
    let data = [b'x'; 240];
    let mut inv = r.commit.prepare_invoke();
    inv.key(&session)
        .key(&delivery)
        .key(format!("{t}:seq"))
        .key(format!("{t}:q:outbox"))
        .key(format!("{t}:j:outbox"))
        .key(format!("{t}:q:timers"))
        .key(format!("{t}:j:timers"));
    inv.arg(expected)
        .arg("save")
        .arg(&data[..])
        .arg(180_000)
        .arg("0\nCON floor")
        .arg(86_400_000)
        .arg(0)
        .arg(0)
        .arg("0")
        .arg(&hop_suffix);
    let _: Value = inv.invoke_async(&mut conn).await?;
    Ok(())
}

async fn handle(req: http::Request<Incoming>, redis: Option<&'static Redis>) -> Response {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return answer(413, "too large\n"),
    };
    let Ok(hop) = serde_urlencoded::from_bytes::<Hop>(&body) else {
        return answer(400, "bad form\n");
    };
    if let Some(r) = redis
        && round_trips(r, &hop).await.is_err()
    {
        return answer(503, "END redis\n");
    }
    answer(200, "CON floor\n1. one\n2. two")
}

async fn serve(listener: TcpListener, redis: Option<&'static Redis>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let svc =
            service_fn(move |req| async move { Ok::<_, Infallible>(handle(req, redis).await) });
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
        });
    }
}

async fn connect(url: &str) -> redis::RedisResult<&'static Redis> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1);
    let conn = ConnectionManager::new_with_config(redis::Client::open(url)?, config).await?;
    let case = include_str!("../src/store/lua/case.lua");
    let r = Redis {
        conn,
        begin: Script::new(include_str!("../src/store/lua/begin.lua")),
        commit: Script::new(&format!(
            "{case}\n{}",
            include_str!("../src/store/lua/commit.lua")
        )),
    };
    for s in [&r.begin, &r.commit] {
        s.load_async(&mut r.conn.clone()).await?;
    }
    Ok(Box::leak(Box::new(r)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: floor plain ADDR | floor redis ADDR REDIS_URL";
    let (mode, addr) = match args.as_slice() {
        [m, a, ..] => (m.as_str(), a.parse::<SocketAddr>()?),
        _ => return Err(usage.into()),
    };
    let redis = match (mode, args.get(2)) {
        ("plain", None) => None,
        ("redis", Some(url)) => Some(connect(url).await?),
        _ => return Err(usage.into()),
    };
    let listener = TcpListener::bind(addr).await?;
    eprintln!("floor {mode} listening on {}", listener.local_addr()?);
    serve(listener, redis).await;
    Ok(())
}
