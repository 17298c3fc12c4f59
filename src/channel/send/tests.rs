//! The common ladder, table-driven: every kind of answer, for kinds with
//! different rules.

use super::*;

const CODES: &[(&str, Meaning)] = &[
    ("R", Meaning::Recipient),
    ("C", Meaning::Channel),
    ("T", Meaning::Retry),
    ("O", Meaning::OptedOut),
];

/// Like Africa's Talking and Infobip: a hint on auth failures, an
/// unreadable 2xx is sent again, an unknown code in a 2xx is retried.
const HINTED: Rules = Rules {
    auth_hint: " (check the key)",
    unreadable: Unreadable::Retry {
        reason: "unreadable reply",
        with_status: false,
    },
    empty: "no message accepted",
    codes: CODES,
    other_code: Meaning::Retry,
};

/// Like Twilio: the aggregator's code names every failure, an unreadable
/// 2xx counts as sent, an unknown code is the channel's.
const BARE: Rules = Rules {
    auth_hint: "",
    unreadable: Unreadable::Sent,
    empty: "",
    codes: CODES,
    other_code: Meaning::Channel,
};

/// Like Kannel: an unexpected 2xx reply names its status.
const STATUS: Rules = Rules {
    auth_hint: "",
    unreadable: Unreadable::Retry {
        reason: "unexpected reply",
        with_status: true,
    },
    empty: "",
    codes: &[],
    other_code: Meaning::Channel,
};

fn http(status: u16, after: Option<u64>, body: Body) -> Answer {
    Answer::Http {
        status,
        retry_after: after.map(Duration::from_secs),
        body,
    }
}

fn code(c: &str) -> Body {
    Body::Code {
        code: c.to_owned(),
        reason: format!("code {c}"),
    }
}

fn retry(after: Option<u64>, reason: &str) -> SendOutcome {
    SendOutcome::Retry {
        after: after.map(Duration::from_secs),
        reason: reason.to_owned(),
    }
}

fn channel(reason: &str) -> SendOutcome {
    SendOutcome::Permanent {
        reason: reason.to_owned(),
        fault: Fault::Channel,
    }
}

fn recipient(reason: &str) -> SendOutcome {
    SendOutcome::Permanent {
        reason: reason.to_owned(),
        fault: Fault::Recipient,
    }
}

fn check(cases: Vec<(&Rules, Answer, SendOutcome)>) {
    for (rules, answer, want) in cases {
        let shown = format!("{answer:?} with {rules:?}");
        assert_eq!(classify(rules, answer), want, "{shown}");
    }
}

#[test]
fn no_answer_is_retried_whatever_the_kind() {
    for rules in [&HINTED, &BARE, &STATUS] {
        check(vec![
            (
                rules,
                Answer::Transport(Transport::Timeout),
                retry(None, "timeout"),
            ),
            (
                rules,
                Answer::Transport(Transport::Connect),
                retry(None, "connect"),
            ),
            (
                rules,
                Answer::Transport(Transport::Other),
                retry(None, "transport"),
            ),
        ]);
    }
}

#[test]
fn a_2xx_is_decided_by_its_body() {
    let sent = |id: Option<&str>| SendOutcome::Sent {
        provider_id: id.map(str::to_owned),
    };
    let accepted = Body::Accepted {
        provider_id: Some("id-1".into()),
    };
    check(vec![
        (
            &HINTED,
            http(200, None, accepted.clone()),
            sent(Some("id-1")),
        ),
        (&STATUS, http(202, None, accepted), sent(Some("id-1"))),
        (&HINTED, http(201, None, code("R")), recipient("code R")),
        (&HINTED, http(201, None, code("C")), channel("code C")),
        // A code's retry ignores Retry-After: it is about the message.
        (
            &HINTED,
            http(201, Some(9), code("T")),
            retry(None, "code T"),
        ),
        (&HINTED, http(201, None, code("O")), SendOutcome::OptedOut),
        (&HINTED, http(201, None, code("Z")), retry(None, "code Z")),
        (&BARE, http(201, None, code("Z")), channel("code Z")),
        (
            &HINTED,
            http(200, None, Body::Empty),
            channel("no message accepted"),
        ),
        (
            &HINTED,
            http(200, None, Body::Unreadable),
            retry(None, "unreadable reply"),
        ),
        (&BARE, http(201, None, Body::Unreadable), sent(None)),
        (
            &STATUS,
            http(202, None, Body::Unreadable),
            retry(None, "http 202 unexpected reply"),
        ),
    ]);
}

#[test]
fn timeouts_throttling_and_server_errors_are_retried_after_retry_after() {
    for rules in [&HINTED, &BARE, &STATUS] {
        check(vec![
            (
                rules,
                http(408, None, Body::Unreadable),
                retry(None, "http 408"),
            ),
            (
                rules,
                http(429, Some(7), Body::Unreadable),
                retry(Some(7), "http 429"),
            ),
            (
                rules,
                http(500, None, Body::Unreadable),
                retry(None, "http 500"),
            ),
            (
                rules,
                http(502, None, Body::Unreadable),
                retry(None, "http 502"),
            ),
            (
                rules,
                http(503, Some(30), Body::Unreadable),
                retry(Some(30), "http 503"),
            ),
            (
                rules,
                http(599, None, Body::Unreadable),
                retry(None, "http 599"),
            ),
        ]);
    }
    // The status wins over a code; the code names the reason.
    check(vec![
        (
            &BARE,
            http(429, Some(3), code("C")),
            retry(Some(3), "code C"),
        ),
        (&BARE, http(503, None, code("R")), retry(None, "code R")),
        (&BARE, http(408, None, code("O")), retry(None, "code O")),
    ]);
}

#[test]
fn statuses_beyond_http_are_the_channels_failure() {
    for rules in [&HINTED, &BARE, &STATUS] {
        check(vec![
            (
                rules,
                http(600, Some(5), Body::Unreadable),
                channel("http 600"),
            ),
            (
                rules,
                http(999, None, Body::Unreadable),
                channel("http 999"),
            ),
        ]);
    }
    check(vec![(&BARE, http(600, None, code("R")), channel("code R"))]);
}

#[test]
fn refused_credentials_are_the_channels_failure() {
    check(vec![
        (
            &HINTED,
            http(401, None, Body::Unreadable),
            channel("http 401 (check the key)"),
        ),
        (
            &HINTED,
            http(403, None, code("R")),
            channel("http 403 (check the key)"),
        ),
        (&BARE, http(401, None, code("C")), channel("code C")),
        (
            &BARE,
            http(403, None, Body::Unreadable),
            channel("http 403"),
        ),
        (
            &STATUS,
            http(403, None, Body::Unreadable),
            channel("http 403"),
        ),
    ]);
}

#[test]
fn other_refusals_follow_the_code_table_else_are_the_channels() {
    check(vec![
        (&BARE, http(400, None, code("R")), recipient("code R")),
        (&BARE, http(400, None, code("O")), SendOutcome::OptedOut),
        (&BARE, http(400, None, code("T")), retry(None, "code T")),
        (&BARE, http(400, None, code("Z")), channel("code Z")),
        (&HINTED, http(400, None, code("Z")), channel("code Z")),
        (
            &HINTED,
            http(404, None, Body::Unreadable),
            channel("http 404"),
        ),
        (
            &STATUS,
            http(400, None, Body::Unreadable),
            channel("http 400"),
        ),
        (
            &STATUS,
            http(302, None, Body::Unreadable),
            channel("http 302"),
        ),
    ]);
}

#[test]
fn retry_after_is_read_in_seconds_only() {
    let header = |v: &str| {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
        h
    };
    assert_eq!(retry_after(&header("7")), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(&header(" 12 ")), Some(Duration::from_secs(12)));
    assert_eq!(retry_after(&header("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    assert_eq!(retry_after(&header("-1")), None);
    assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
}

#[test]
fn not_configured_is_the_channels_failure() {
    assert!(matches!(
        not_configured(),
        SendOutcome::Permanent {
            fault: Fault::Channel,
            ..
        }
    ));
}
