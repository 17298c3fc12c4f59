//! The shipped default config runs the whole chain over the console
//! channel, in process on a manual clock: her last screen queues the offer
//! to the demo lawyer on call, nobody answers, and the case escalates to
//! the team, then the coordinator, and she is told to call the hotline.
//! The workers are driven by `tick(now)`; nothing sleeps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hotline::app::App;
use hotline::channel::console::Sent;
use hotline::channel::{UssdIn, UssdInput};
use hotline::clock::Clock;
use hotline::dispatch::timers::TimerWorker;
use hotline::phone::PhoneNumber;

/// 2026-12-01 10:00 in Bishkek.
const T0: u64 = 1_796_097_600_000;
const HER: &str = "+996555123456";
/// The demo roster's lawyers (config/demo-roster.phones.toml).
const BERMET: &str = "+447700900102";
const AIGUL: &str = "+447700900101";
const KANYKEI: &str = "+447700900100";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct World {
    app: App,
    clock: Clock,
    timers: TimerWorker,
}

impl World {
    fn new() -> World {
        let text = std::fs::read_to_string(root().join("config/hotline.toml")).unwrap();
        let env: BTreeMap<&str, &str> = BTreeMap::new();
        let (config, _) =
            hotline::config::parse(&text, "config/hotline.toml", &root().join("config"), &env)
                .expect("the default config loads");
        assert_eq!(config.production(), None);
        let clock = Clock::manual(T0);
        let store = App::memory_store(&config);
        let (app, _) = App::build(config, store, clock.clone(), &env).expect("the default builds");
        let d = app.live_dispatcher.clone().expect("the default dispatches");
        World {
            app,
            clock,
            timers: TimerWorker::new(d, Duration::from_secs(1)),
        }
    }

    async fn hop(&self, text: &str) -> String {
        let answer = self
            .app
            .gateway
            .ussd(
                "africastalking",
                UssdIn {
                    hop_id: None,
                    session_id: "s1".into(),
                    from: PhoneNumber::parse_international(HER).unwrap(),
                    service_code: "*384#".into(),
                    input: UssdInput::Cumulative(text.into()),
                },
            )
            .await;
        answer.text
    }

    /// Let `minutes` pass, ticking the timer and outbox workers each minute.
    async fn wait(&self, minutes: u64) {
        for _ in 0..minutes {
            self.clock.advance_by(Duration::from_secs(60));
            let now = self.clock.now_ms();
            self.timers.tick(now).await;
            self.app.outbox.tick(now).await;
        }
    }

    fn console(&self) -> Vec<Sent> {
        self.app.channels["console"]
            .console()
            .expect("a console channel")
            .messages()
    }

    fn to(&self, number: &str) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|m| m.to.as_str() == number)
            .map(|m| m.text)
            .collect()
    }
}

#[tokio::test]
async fn an_unanswered_case_escalates_to_the_team_the_coordinator_and_tells_her_to_call() {
    let w = World::new();
    for t in ["", "4", "4*1", "4*1*1", "4*1*1*Station 5"] {
        w.hop(t).await;
    }
    let end = w.hop("4*1*1*Station 5*0").await;
    assert!(end.contains("We will call you soon"), "{end}");
    let code: String = end
        .split("code is ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    w.app.outbox.tick(w.clock.now_ms()).await;
    // Bermet is on call in Bishkek (the demo roster); the code below takes
    // either of the two, as a roster with 24-hour turns would.
    let sent = w.console();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let on_call = sent[0].to.as_str().to_owned();
    let other = if on_call == AIGUL { BERMET } else { AIGUL };
    assert!(on_call == AIGUL || on_call == BERMET);
    assert!(
        sent[0].text.contains(&format!("Reply OK or NO {code}")),
        "{sent:?}"
    );

    // Nobody answers: after 2 minutes the rest of the team gets it too.
    w.wait(2).await;
    let team = w.to(other);
    assert_eq!(team.len(), 1, "{:?}", w.console());
    assert!(team[0].contains(&code), "{team:?}");
    assert!(w.to(KANYKEI).is_empty());

    // After 5, the coordinator; after 10, she is told to call the hotline.
    w.wait(3).await;
    assert!(
        w.to(KANYKEI).iter().any(|t| t.contains(&code)),
        "{:?}",
        w.console()
    );
    assert!(w.to(HER).is_empty(), "nothing to her yet: {:?}", w.to(HER));
    w.wait(5).await;
    let hers = w.to(HER);
    assert!(
        hers.iter()
            .any(|t| t.contains(&code) && t.contains("+996 000 000 000")),
        "{hers:?}"
    );
}
