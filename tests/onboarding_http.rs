//! Onboarding over HTTP: `hotline test-sms` (the binary, through the
//! running memory-store gateway's admin listener, and `POST /test-sms`
//! directly) sends a lawyer the welcome; her bare `OK` confirms her number;
//! the admin endpoint wants a token in production (every test gateway
//! runs with a real `HOTLINE_PII_KEY`, so it is production here).

mod common;

use common::world::{AIDA, BAKYT, CHOLPON, world_with};

const TOKEN: &str = "admin-token-0123456789";
const BEARER: [(&str, &str); 1] = [("Authorization", "Bearer admin-token-0123456789")];
use hotline::dispatch::onboarding;

async fn unverified(w: &common::world::World) -> Vec<String> {
    let app = &w.gw.app;
    let d = app.dispatcher().unwrap();
    onboarding::unverified(
        app.deps.store.as_ref(),
        &app.deps.privacy,
        &d.roster,
        w.gw.clock.now_ms(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_welcome_asks_for_ok_and_her_ok_confirms_her_number() {
    let w = world_with(&[("HOTLINE_ADMIN_TOKEN", TOKEN)]).await;
    assert_eq!(unverified(&w).await, ["aida", "bakyt", "cholpon", "nurgul"]);

    // By name, in Cyrillic (URL-encoded).
    let path = "/test-sms?lawyer=%D0%91%D0%B0%D0%BA%D1%8B%D1%82";
    let r = common::request(w.gw.admin, "POST", path, &BEARER, b"").await;
    assert_eq!(r.status, 202, "{}", r.body);
    let welcome = w.nth(BAKYT, 1).await;
    assert!(
        welcome.starts_with("Hotline: you are on the roster as Bakyt."),
        "{welcome}"
    );
    assert!(
        welcome.ends_with("Reply OK to confirm this number."),
        "{welcome}"
    );

    w.lawyer_says(BAKYT, "ok").await;
    assert_eq!(
        w.nth(BAKYT, 2).await,
        "Thank you, Bakyt: your number is confirmed."
    );
    assert_eq!(unverified(&w).await, ["aida", "cholpon", "nurgul"]);
    // A second OK is an ordinary bare OK again.
    w.lawyer_says(BAKYT, "OK").await;
    assert_eq!(w.nth(BAKYT, 3).await, "No case is offered to you now.");
    // Without a welcome, OK confirms nothing.
    w.lawyer_says(AIDA, "OK").await;
    assert_eq!(w.nth(AIDA, 1).await, "No case is offered to you now.");

    let r = common::request(w.gw.admin, "POST", "/test-sms?lawyer=zarina", &BEARER, b"").await;
    assert_eq!(r.status, 404);

    // The command, against the running gateway's admin listener.
    let config = w.dir.path().join("hotline.toml");
    let admin = format!("http://{}", w.gw.admin);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::binary())
            .args(["test-sms", "cholpon", "--config"])
            .arg(&config)
            .args(["--admin", &admin])
            .env("HOTLINE_AT_API_KEY", "k")
            .env("HOTLINE_ADMIN_TOKEN", TOKEN)
            .env_remove("HOTLINE_REDIS_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        w.nth(CHOLPON, 1)
            .await
            .starts_with("Ишеним линиясы: сиз тизмеде Cholpon катары.")
    );
    w.gw.stop().await;
}

#[tokio::test]
async fn in_production_test_sms_needs_the_admin_token() {
    let key = (
        "HOTLINE_PII_KEY",
        "pii-key-0123456789-0123456789-0123456789",
    );
    let w = world_with(&[key]).await;
    let r = common::request(w.gw.admin, "POST", "/test-sms?lawyer=aida", &[], b"").await;
    assert_eq!(r.status, 403, "production without a token: refused");
    w.gw.stop().await;

    let w = world_with(&[key, ("HOTLINE_ADMIN_TOKEN", TOKEN)]).await;
    let wrong = [("Authorization", "Bearer nope")];
    let r = common::request(w.gw.admin, "POST", "/test-sms?lawyer=aida", &wrong, b"").await;
    assert_eq!(r.status, 401);
    let r = common::request(w.gw.admin, "POST", "/test-sms?lawyer=aida", &BEARER, b"").await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(
        w.nth(AIDA, 1)
            .await
            .starts_with("Hotline: you are on the roster as Aida.")
    );
    w.gw.stop().await;
}
