//! Header bomb: 1,000 connections each sending 400 KiB of a request head
//! that never ends. hyper reads at most `server.max_header_bytes` per
//! connection (its read buffer), answers 431 and closes, so the gateway's
//! memory stays bounded. Alone in this file so that the process's RSS
//! (/proc/self/status) is this test's.
//!
//! Numbers are printed (`-- --nocapture`); only a generous bound is
//! asserted. `HOTLINE_BOMB_HEADER_CAP=409600` runs the same bomb with
//! hyper's old default buffer (~400 KiB), for comparison.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Gateway, TIMEOUT};
use hotline::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `VmRSS` or `VmHWM` of this process, in KiB (0 where /proc is missing).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_bomb_keeps_memory_bounded() {
    const CONNECTIONS: usize = 1000;
    const HEAD_BYTES: usize = 400 * 1024;
    let cap = std::env::var("HOTLINE_BOMB_HEADER_CAP").unwrap_or_else(|_| "16384".into());
    let cfg = common::default_config()
        .replace(
            "max_connections_per_ip = 64",
            "max_connections_per_ip = 5000",
        )
        .replace(
            "max_header_bytes = 16384",
            &format!("max_header_bytes = {cap}"),
        )
        .replace("idle_timeout_ms = 2000", "idle_timeout_ms = 10000");
    let gw = Gateway::start_with(&cfg, &[], None, Clock::System).await;
    // Warm up: one ordinary hop, so the baseline includes a served request.
    assert_eq!(gw.ussd("ATUid_warm", "+996555710002", "").await.status, 200);
    let before = status_kib("VmRSS:");

    let mut bomb = b"POST /webhooks/africastalking/ussd HTTP/1.1\r\nHost: t\r\nX-Bomb: ".to_vec();
    bomb.resize(HEAD_BYTES, b'a');
    let bomb: Arc<[u8]> = bomb.into();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(status_kib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let public = gw.public;
    let attackers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let bomb = bomb.clone();
            tokio::spawn(async move {
                let mut s = TcpStream::connect(public).await.ok()?;
                // The server stops reading at its cap: writes fail or stall.
                let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&bomb)).await;
                let mut head = [0u8; 12];
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head)).await;
                Some((head, s))
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut answered_431 = 0;
    for a in attackers {
        let done = tokio::time::timeout(TIMEOUT, a)
            .await
            .expect("attacker ends");
        if let Some((head, s)) = done.unwrap() {
            answered_431 += usize::from(head.starts_with(b"HTTP/1.1 431"));
            held.push(s);
        }
    }
    let during = status_kib("VmRSS:");
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed).max(during);
    println!(
        "header bomb, max_header_bytes = {cap}: {CONNECTIONS} connections × {} KiB; \
         {answered_431} answered 431; RSS before {} MiB, peak {} MiB (+{} MiB), VmHWM {} MiB",
        HEAD_BYTES / 1024,
        before / 1024,
        peak / 1024,
        (peak - before) / 1024,
        status_kib("VmHWM:") / 1024,
    );
    // The gateway still serves.
    assert_eq!(
        gw.ussd("ATUid_after", "+996555710003", "").await.status,
        200
    );
    drop(held);
    // Generous: 1,000 × 16 KiB buffers is ~16 MiB; the old default let this
    // bomb reach ~400 MiB.
    if cap == "16384" {
        assert!(answered_431 > 0);
        assert!(peak - before < 150 * 1024, "RSS grew {} KiB", peak - before);
    }
    gw.stop().await;
}
