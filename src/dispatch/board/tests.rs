//! The board shows codes, cities, ages, levels and lawyers — never a
//! number, a location or a callback — and its gauges count what it shows.

use std::collections::BTreeMap;

use super::*;
use crate::dispatch::lifecycle::tests::roster;
use crate::dispatch::lifecycle::{Dispatch, Offer};
use crate::phone::PhoneNumber;
use crate::store::NewCase;
use crate::store::memory::MemoryStore;

const MIN: u64 = 60_000;
const T0: u64 = 1_796_097_600_000;

fn case(id: &str, city: &str, dispatch: Dispatch) -> CaseData {
    let mut vars = BTreeMap::new();
    vars.insert("city".to_owned(), city.to_owned());
    vars.insert("situation".to_owned(), "detained_self".to_owned());
    vars.insert("location".to_owned(), "ул. Токтогула 12".to_owned());
    vars.insert("callback".to_owned(), "+996700111222".to_owned());
    CaseData {
        id: id.into(),
        flow: "legal_help".into(),
        lang: "ru".into(),
        channel: "at".into(),
        caller: PhoneNumber::parse_international("+996555123456").ok(),
        country: Some("KG".into()),
        city: city.into(),
        vars,
        opened_at_ms: T0,
        dispatch,
    }
}

fn offered(level: u32, lawyer: &str) -> Dispatch {
    Dispatch {
        level,
        offers: vec![Offer {
            lawyer: lawyer.into(),
            at_ms: T0,
            level,
            round: 0,
            declined: false,
            undelivered: false,
        }],
        ..Dispatch::default()
    }
}

#[test]
fn a_row_names_lawyers_and_levels_and_nothing_about_her() {
    let r = roster();
    let row = CaseRow::of(
        &case("c_1", "bishkek", offered(0, "aida")),
        "4821",
        Some(&r),
        T0 + 7 * MIN,
    );
    assert_eq!(row.code, "4821");
    assert_eq!(row.age_secs, 420);
    assert_eq!((row.level, row.pass), (1, 1));
    assert_eq!(row.level_kind.as_deref(), Some("on_call"));
    assert_eq!(row.offers[0].name.as_deref(), Some("Aida"));
    let json = serde_json::to_string(&row).unwrap();
    for secret in ["555123456", "700111222", "Токтогула", "detained"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
}

#[test]
fn gauges_count_open_cases_by_city_and_level_and_the_oldest_wait() {
    let r = roster();
    let now = T0 + 30 * MIN;
    let mut young = case("c_2", "bishkek", offered(1, "bakyt"));
    young.opened_at_ms = T0 + 20 * MIN;
    let accepted = Dispatch {
        status: Status::Accepted,
        accepted_by: Some("aida".into()),
        accepted_at_ms: Some(T0 + MIN),
        ..offered(0, "aida")
    };
    let rows: Vec<CaseRow> = [
        case("c_1", "bishkek", offered(0, "aida")),
        young,
        case("c_3", "bishkek", accepted),
    ]
    .iter()
    .map(|c| CaseRow::of(c, "1000", Some(&r), now))
    .collect();
    let g = OpenGauges::of(&rows);
    let key = |c: &str, l: &str| (c.to_owned(), l.to_owned());
    assert_eq!(g.open[&key("bishkek", "on_call")], 1);
    assert_eq!(g.open[&key("bishkek", "next_on_call")], 1);
    assert_eq!(g.open[&key("bishkek", ACCEPTED)], 1);
    assert_eq!(g.oldest_unaccepted_secs["bishkek"], 30 * 60);
    assert_eq!(rows[2].accept_secs, Some(60));
}

async fn record(store: &MemoryStore, privacy: &Privacy, c: &CaseData, bucket: u16) -> String {
    let data = privacy.seal_json(c).unwrap();
    let new = NewCase {
        id: c.id.clone(),
        code_candidates: crate::store::code_candidates(bucket, &c.id, 8),
        data,
        jobs: Vec::new(),
    };
    store.record_case(bucket, new, T0).await.unwrap()
}

#[tokio::test]
async fn collect_lists_open_cases_and_with_all_the_recently_closed_ones() {
    let store = MemoryStore::new(100);
    let privacy = Privacy::new(b"0123456789abcdef0123456789abcdef");
    let r = roster();
    let open = record(
        &store,
        &privacy,
        &case("c_1", "bishkek", offered(0, "aida")),
        3,
    )
    .await;
    let closed = Dispatch {
        status: Status::Closed,
        closed_at_ms: Some(T0 + MIN),
        ..Dispatch::default()
    };
    let old = Dispatch {
        status: Status::Closed,
        closed_at_ms: Some(T0 - MIN),
        ..Dispatch::default()
    };
    let closed_code = record(&store, &privacy, &case("c_2", "osh", closed), 5).await;
    let mut old = case("c_3", "osh", old);
    old.opened_at_ms = T0 - 2 * MIN;
    record(&store, &privacy, &old, 7).await;
    // The store keeps closed cases in its "all" set only once closed.
    for (bucket, id, code) in [(5, "c_2", closed_code.as_str())] {
        let rec = store.case(bucket, id).await.unwrap().unwrap();
        let update = crate::store::CaseUpdate {
            bucket,
            id: id.into(),
            code: code.into(),
            alias: None,
            expected_version: rec.version,
            data: rec.data,
            close: true,
            jobs: Vec::new(),
            mark: None,
            mark_global: false,
            now_ms: T0 + MIN,
        };
        assert!(store.update_case(update).await.unwrap());
    }
    let now = T0 + RECENT_MS;
    let open_only = collect(&store, &privacy, Some(&r), &Filter::default(), now)
        .await
        .unwrap();
    let codes = |b: &Board| b.cases.iter().map(|c| c.code.clone()).collect::<Vec<_>>();
    assert!(codes(&open_only).contains(&open));
    assert!(!codes(&open_only).contains(&closed_code));
    let all = Filter {
        all: true,
        city: Some("osh".into()),
    };
    let all = collect(&store, &privacy, Some(&r), &all, now)
        .await
        .unwrap();
    // Opened exactly 72 h ago: still shown; the one opened and closed
    // earlier than that is not; Bishkek's is filtered out.
    assert_eq!(codes(&all), vec![closed_code]);
    assert!(!all.truncated);
}
