//! A coordinator's SMS commands end to end over HTTP (`ASSIGN`, `COVER`,
//! `CASES`, `WHO`): the coordinator (nurgul, Russian) and lawyers text the
//! SMS webhook, the mock Africa's Talking API records what they are sent.
//! Time is a manual clock.

mod common;

use common::world::{
    AIDA, BAKYT, CHOLPON, HALYNA, LARYSA, MIN, NURGUL, POLTAVA_ENV, roster_with_poltava, world,
    world_on_redis, world_on_redis_with,
};

#[tokio::test]
async fn assign_offers_a_case_directly_and_only_the_coordinator_may() {
    let w = world().await;
    let code = w.request("ATUid_c1", "+996555771001").await;
    w.wait_for(AIDA, 1).await;

    // A lawyer who is not the coordinator is refused; nothing changes.
    w.lawyer_says(AIDA, &format!("ASSIGN {code} bakyt")).await;
    assert_eq!(
        w.nth(AIDA, 2).await,
        "Only the city's coordinator can do that."
    );
    assert_eq!(w.case(&code).await.dispatch.offers.len(), 1);

    // The coordinator names her in Cyrillic.
    w.lawyer_says(NURGUL, &format!("назначить {code} Чолпон"))
        .await;
    assert_eq!(
        w.nth(NURGUL, 1).await,
        format!("Дело {code} предложено: Cholpon.")
    );
    let offer = w.nth(CHOLPON, 1).await;
    assert!(offer.starts_with(&format!("{code} Бишкек,")), "{offer}");
    assert!(offer.ends_with(&format!("NO {code}")), "{offer}");
    w.advance(MIN);
    w.lawyer_says(CHOLPON, &format!("OK {code}")).await;
    w.wait_for(CHOLPON, 2).await;
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("cholpon")
    );
    assert!(
        w.to(BAKYT).is_empty(),
        "the refused ASSIGN offered bakyt nothing"
    );

    // A name nobody has.
    w.lawyer_says(NURGUL, &format!("ASSIGN {code} zarina"))
        .await;
    assert_eq!(w.nth(NURGUL, 2).await, "Нет юриста zarina.");
    assert_eq!(w.commands("assign", "ok").await, 1.0);
    assert_eq!(w.commands("assign", "refused").await, 2.0);
    w.gw.stop().await;
}

/// `WHO` marks a lawyer on call who sent `OFF`: every offer skips her,
/// and the coordinator must not read her as the one handling new cases
/// (newcomer audit: "Bishkek on call: Bermet" while dispatch skipped her).
#[tokio::test]
async fn who_marks_the_lawyer_on_call_who_sent_off() {
    let w = world().await;
    w.lawyer_says(NURGUL, "WHO").await;
    let before = w.nth(NURGUL, 1).await;
    assert!(before.starts_with("Бишкек: дежурит Aida"), "{before}");
    assert!(!before.contains("OFF"), "{before}");
    w.lawyer_says(AIDA, "OFF").await;
    w.wait_for(AIDA, 1).await;
    w.lawyer_says(NURGUL, "WHO").await;
    let after = w.nth(NURGUL, 2).await;
    assert!(after.starts_with("Бишкек: дежурит Aida (OFF)"), "{after}");
    w.gw.stop().await;
}

#[tokio::test]
async fn cover_puts_someone_on_call_until_it_ends() {
    let w = world().await;
    w.lawyer_says(BAKYT, "COVER bakyt 2d").await;
    assert_eq!(
        w.nth(BAKYT, 1).await,
        "Only the city's coordinator can do that."
    );
    w.lawyer_says(NURGUL, "COVER bakyt soon").await;
    assert!(
        w.nth(NURGUL, 1)
            .await
            .starts_with("Не понято. Пример: COVER aida 18:00")
    );

    w.lawyer_says(NURGUL, "замена Бакыт 18:00").await;
    assert_eq!(w.nth(NURGUL, 2).await, "Bakyt дежурит в Бишкек до 18:00.");
    let stored =
        w.gw.app
            .deps
            .store
            .get(None, "cover:bishkek", w.gw.clock.now_ms())
            .await
            .unwrap()
            .expect("the cover is a store record");
    assert!(
        String::from_utf8(stored)
            .unwrap()
            .contains("\"lawyer\":\"bakyt\"")
    );

    // A case now goes to bakyt, not to aida whose shift it is.
    let code = w.request("ATUid_c2", "+996555771002").await;
    let offer = w.nth(BAKYT, 2).await;
    assert!(offer.starts_with(&format!("{code} Bishkek,")), "{offer}");
    assert!(w.to(AIDA).is_empty());
    w.lawyer_says(NURGUL, "WHO").await;
    assert_eq!(
        w.nth(NURGUL, 3).await,
        "Бишкек: дежурит Bakyt (–18:00). Далее: Aida 18:00"
    );

    // After 18:00 the roster holds again.
    w.lawyer_says(BAKYT, &format!("OK {code}")).await;
    w.wait_for(BAKYT, 3).await;
    w.advance(8 * 60 * MIN);
    let code = w.request("ATUid_c3", "+996555771003").await;
    let offer = w.nth(AIDA, 1).await;
    assert!(offer.starts_with(&format!("{code} Bishkek,")), "{offer}");
    assert_eq!(w.commands("cover", "ok").await, 1.0);
    assert_eq!(w.commands("cover", "refused").await, 2.0);
    w.gw.stop().await;
}

/// A lawyer who asks for help herself — a USSD walk from her own number
/// (aida, whose shift it is) — is never offered her own case: the offer
/// (her situation, her location) would go to the phone that may be in
/// police hands, and the first level would be spent on her. The chain goes
/// on as if she were off call, the coordinator's `ASSIGN` to her is
/// refused, and her `OK` cannot take it. On Redis.
#[tokio::test]
async fn a_lawyer_who_asks_for_help_is_never_offered_her_own_case() {
    let w = world_on_redis("owncase").await;
    let code = w.request("ATUid_own", AIDA).await;
    // At once to the next in line: the on_call level is not spent on her.
    let offer = w.nth(BAKYT, 1).await;
    assert!(offer.starts_with(&format!("{code} Bishkek,")), "{offer}");
    w.advance(3 * MIN + 1000);
    assert!(w.nth(CHOLPON, 1).await.starts_with(&code));
    w.advance(5 * MIN + 1000);
    assert!(w.nth(NURGUL, 1).await.starts_with(&code));

    w.lawyer_says(NURGUL, &format!("ASSIGN {code} aida")).await;
    assert_eq!(
        w.nth(NURGUL, 2).await,
        format!("Дело {code} открыто с телефона Aida: ей оно не предлагается.")
    );
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    assert_eq!(
        w.nth(AIDA, 1).await,
        format!("Case {code} was not offered to you.")
    );
    let case = w.case(&code).await;
    assert!(
        case.dispatch.offers.iter().all(|o| o.lawyer != "aida"),
        "{:?}",
        case.dispatch.offers
    );
    assert_eq!(case.dispatch.accepted_by, None);
    assert!(
        w.to(AIDA).iter().all(|m| !m.contains("Station 5")),
        "her location never went to her phone: {:?}",
        w.to(AIDA)
    );
    assert_eq!(w.commands("assign", "refused").await, 1.0);
    w.gw.stop().await;
}

/// `COVER` and `ASSIGN` of a lawyer who does not work in the city are
/// refused with a reply saying so: Bishkek's coordinator covering with
/// Halyna (Poltava only) was told "Halyna дежурит в Бишкек", and the next
/// Bishkek woman's number and location went to Halyna's Ukrainian phone.
/// Her own city's coordinator may. On Redis.
#[tokio::test]
async fn cover_and_assign_refuse_a_lawyer_from_another_city() {
    let w = world_on_redis_with("notincity", &roster_with_poltava(), &POLTAVA_ENV).await;
    w.lawyer_says(NURGUL, "COVER halyna 2h").await;
    assert_eq!(
        w.nth(NURGUL, 1).await,
        "Halyna не работает в Бишкек: ничего не изменено."
    );
    let now = w.gw.clock.now_ms();
    let store = &w.gw.app.deps.store;
    assert!(
        store
            .get(None, "cover:bishkek", now)
            .await
            .unwrap()
            .is_none()
    );

    // The next Bishkek case goes to the roster's lawyer, not to Halyna.
    let code = w.request("ATUid_nic", "+996555771010").await;
    assert!(w.nth(AIDA, 1).await.starts_with(&code));
    w.lawyer_says(NURGUL, &format!("ASSIGN {code} halyna"))
        .await;
    assert_eq!(
        w.nth(NURGUL, 2).await,
        "Halyna не работает в Бишкек: ничего не изменено."
    );
    assert_eq!(w.case(&code).await.dispatch.offers.len(), 1);

    // Poltava's coordinator puts her on call in Poltava (06:00 in Kyiv).
    w.lawyer_says(LARYSA, "COVER halyna 2h").await;
    assert_eq!(w.nth(LARYSA, 1).await, "Halyna чергує в Полтава до 08:00.");
    common::outbox_idle(&w.gw).await;
    assert!(w.to(HALYNA).is_empty(), "{:?}", w.to(HALYNA));
    assert_eq!(w.commands("cover", "refused").await, 1.0);
    assert_eq!(w.commands("assign", "refused").await, 1.0);
    assert_eq!(w.commands("cover", "ok").await, 1.0);
    w.gw.stop().await;
}

/// A coordinator's `DONE` on an open case nobody accepted (a one-digit
/// typo is enough) used to close it without a trace: the woman, told she
/// would be called, heard nothing more; it was not counted unanswered (no
/// page); the lawyers holding the offer were not told. Now she is sent
/// the fallback number, it counts as unanswered, they are told, and the
/// coordinator's reply says nobody had accepted it. On Redis.
#[tokio::test]
async fn a_coordinators_done_on_a_case_nobody_accepted_leaves_a_trace() {
    let w = world_on_redis("closeopen").await;
    let woman = "+996555771011";
    let code = w.request("ATUid_co", woman).await;
    assert!(w.nth(AIDA, 1).await.starts_with(&code));
    w.advance(3 * MIN + 1000);
    assert!(w.nth(BAKYT, 1).await.starts_with(&code));

    w.lawyer_says(NURGUL, &format!("DONE {code}")).await;
    assert_eq!(
        w.nth(NURGUL, 1).await,
        format!(
            "Дело {code} закрыто: итог не указан (см. HELP). Его никто не принял: учтено как без ответа."
        )
    );
    let fallback = w.nth(woman, 1).await;
    assert!(
        fallback.starts_with(&format!("По запросу {code} пока не смогли связаться.")),
        "{fallback}"
    );
    for lawyer in [AIDA, BAKYT] {
        assert_eq!(
            w.nth(lawyer, 2).await,
            format!("Case {code} was closed by Nurgul before anyone accepted it. Nothing to do.")
        );
    }
    assert_eq!(
        w.gw.metric(r#"hotline_cases_unanswered_total{city="bishkek"}"#)
            .await,
        1.0
    );
    // A later OK is told it is closed; the fallback timer sends nothing more.
    w.lawyer_says(AIDA, &format!("OK {code}")).await;
    assert_eq!(
        w.nth(AIDA, 3).await,
        format!("Case {code} is already closed.")
    );
    w.advance(15 * MIN);
    common::outbox_idle(&w.gw).await;
    assert_eq!(w.to(woman).len(), 1, "{:?}", w.to(woman));
    assert_eq!(w.to(CHOLPON).len(), 0, "never offered, not told");
    assert_eq!(
        w.gw.metric(r#"hotline_cases_unanswered_total{city="bishkek"}"#)
            .await,
        1.0
    );
    assert_eq!(w.commands("done", "ok").await, 1.0);
    w.gw.stop().await;
}

#[tokio::test]
async fn cases_and_who_answer_in_her_language() {
    let w = world().await;
    w.lawyer_says(NURGUL, "CASES").await;
    assert_eq!(w.nth(NURGUL, 1).await, "Бишкек: открытых дел нет.");
    let a = w.request("ATUid_c4", "+996555771004").await;
    let b = w.request("ATUid_c5", "+996555771005").await;
    w.wait_for(AIDA, 2).await;
    w.lawyer_says(AIDA, &format!("OK {a}")).await;
    w.wait_for(AIDA, 3).await;
    w.lawyer_says(NURGUL, "кейсы").await; // not a command: help
    w.lawyer_says(NURGUL, "cases").await;
    let list = w.nth(NURGUL, 3).await;
    assert!(list.starts_with("Бишкек, открытые: "), "{list}");
    assert!(list.contains(&format!("{a} ok Aida")), "{list}");
    assert!(list.contains(&format!("{b} ?")), "{list}");
    // What needs her first: the cases nobody accepted, oldest first, then
    // the accepted ones (the list is cut after twelve).
    assert_eq!(
        list,
        format!("Бишкек, открытые: {b} ?, {a} ok Aida"),
        "waiting before accepted"
    );

    w.lawyer_says(NURGUL, "кто").await;
    assert_eq!(
        w.nth(NURGUL, 4).await,
        "Бишкек: дежурит Aida. Далее: Bakyt 02.12 09:00"
    );
    // Any lawyer may ask WHO for her own city.
    w.lawyer_says(CHOLPON, "WHO").await;
    assert_eq!(
        w.nth(CHOLPON, 1).await,
        "Бишкек: нөөмөттө Aida. Кийинки: Bakyt 02.12 09:00"
    );
    assert_eq!(w.commands("cases", "ok").await, 2.0);
    assert_eq!(w.commands("who", "ok").await, 2.0);
    w.gw.stop().await;
}

/// A coordinator takes a case nobody offered her, by its code; her bare
/// `DONE` then finds it: a bare command reads only her case index (never
/// every open case), and accepting without an offer puts the case in it.
#[tokio::test]
async fn a_case_the_coordinator_took_by_its_code_is_found_by_her_bare_done() {
    let w = world().await;
    let code = w.request("ATUid_c9", "+996555771009").await;
    w.wait_for(AIDA, 1).await;
    w.lawyer_says(NURGUL, &format!("OK {code}")).await;
    w.wait_for(NURGUL, 1).await;
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("nurgul")
    );
    w.advance(MIN);
    w.lawyer_says(NURGUL, "DONE").await;
    w.wait_for(NURGUL, 2).await;
    assert_eq!(
        w.case(&code).await.dispatch.status,
        hotline::dispatch::lifecycle::Status::Closed,
        "closed by her bare DONE: {:?}",
        w.to(NURGUL)
    );
    // A lawyer with no case: her bare OK finds nothing.
    w.lawyer_says(BAKYT, "OK").await;
    w.wait_for(BAKYT, 1).await;
    assert_eq!(w.commands("accept", "none_pending").await, 1.0);
    w.gw.stop().await;
}

/// A lawyer's SMS without a message id (Kannel without `id=%I`) cannot be
/// told from its retry: it acts once per arrival, through the same path as
/// one with an id, and under the same rate limit (burst 30).
#[tokio::test]
async fn a_lawyers_sms_without_an_id_acts_and_is_rate_limited() {
    let w = world().await;
    let code = w.request("ATUid_noid", "+996555300777").await;
    w.wait_for(AIDA, 1).await;
    let say = |text: String| {
        let body = common::form(&[("from", AIDA), ("to", "21212"), ("text", &text)]);
        let public = w.gw.public;
        async move {
            let r = common::post_form(public, "/webhooks/africastalking/sms", &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    say(format!("OK {code}")).await;
    assert_eq!(
        w.case(&code).await.dispatch.accepted_by.as_deref(),
        Some("aida"),
        "her OK without an id took the case"
    );
    // The clock stands still: a burst of 30 bare commands, then refusals.
    for _ in 0..34 {
        say("STATUS".into()).await;
    }
    assert_eq!(
        w.commands("status", "ok").await,
        30.0,
        "30 answered at once, the rest refused by her rate limit"
    );
}

/// A lawyer's `OFF` is in Redis: a restarted gateway reads it before its
/// listeners answer and its workers start (`App::read_dispatch_state`),
/// so the first case after the restart — or one replayed from a spool,
/// or an escalation due meanwhile — is never offered to her. Before, the
/// set was first read by the timer worker, alongside the listeners, the
/// spool replay and the timers.
#[tokio::test]
async fn a_restarted_gateway_knows_who_sent_off_before_it_offers_anything() {
    use common::Gateway;
    use common::world::{ENV, T0, World};
    use hotline::clock::Clock;
    let w = world_on_redis("offrestart").await;
    w.lawyer_says(AIDA, "OFF").await;
    assert_eq!(
        w.wait_for(AIDA, 1).await[0],
        "You are off call. Send ON to come back."
    );
    let World {
        gw,
        api,
        dir,
        redis,
    } = w;
    gw.stop().await;
    let cfg = std::fs::read_to_string(dir.path().join("hotline.toml")).unwrap();
    let url = redis.as_ref().expect("on Redis").url.clone();
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.push(("HOTLINE_REDIS_URL", &url));
    let gw = Gateway::start_with(&cfg, &env, None, Clock::manual(T0)).await;
    let w = World {
        gw,
        api,
        dir,
        redis,
    };
    // Its first answer comes after the read.
    let first = w.gw.ussd("ATUid_offrestart", "+996555771900", "").await;
    assert!(first.body.starts_with("CON "), "{}", first.body);
    let d = w.gw.app.dispatcher().expect("dispatch on");
    assert!(d.state_read(), "read before the listeners answered");
    assert!(d.off_set().contains("aida"), "{:?}", d.off_set());
    let code = w.request("ATUid_offrestart2", "+996555771901").await;
    let offer = w.nth(BAKYT, 1).await;
    assert!(offer.starts_with(&format!("{code} Bishkek,")), "{offer}");
    assert!(
        w.to(AIDA).iter().all(|m| !m.contains(&code)),
        "offered to a lawyer who sent OFF: {:?}",
        w.to(AIDA)
    );
    w.gw.stop().await;
}
