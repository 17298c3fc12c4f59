//! The configurable USSD adapter, profile by profile: parsing hops and
//! rendering screens (its settings are in `settings`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::channel::{build, http_client};
use crate::config::{LoadError, parse};
use bytes::Bytes;
use http::HeaderMap;

const HEAD: &str = r#"
[flows]
dir = "../flows"
default = "legal_help"
fallback_phone = "+996 000 000 000"
[[channels]]
name = "op"
kind = "ussd"
"#;

/// Build a `kind = "ussd"` channel from its settings, through the config
/// loader and `channel::build`, as the gateway does.
fn try_channel(settings: &str) -> Result<Arc<dyn Channel>, Vec<String>> {
    let env: BTreeMap<&str, &str> = [("OP_SECRET", "s3cret")].into_iter().collect();
    let text = format!("{HEAD}{settings}");
    let config = match parse(&text, "c.toml", Path::new("config"), &env) {
        Ok((c, _)) => c,
        Err(LoadError::Invalid(ps)) => return Err(ps.iter().map(ToString::to_string).collect()),
        Err(LoadError::Unreadable(p)) => return Err(vec![p.to_string()]),
    };
    build(0, &config.channels[0], "c.toml", &http_client())
        .map_err(|ps| ps.iter().map(ToString::to_string).collect())
}

fn channel(settings: &str) -> Arc<dyn Channel> {
    match try_channel(settings) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

fn problems(settings: &str) -> Vec<String> {
    match try_channel(settings) {
        Ok(_) => panic!("expected problems for {settings}"),
        Err(e) => e,
    }
}

fn post(body: &str) -> Request {
    Request {
        path: String::new(),
        method: Method::POST,
        query: None,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_owned()),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn get(query: &str) -> Request {
    Request {
        path: String::new(),
        method: Method::GET,
        query: Some(query.to_owned()),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        peer: "127.0.0.1".parse().unwrap(),
    }
}

fn bad(want: &str) -> ChannelError {
    ChannelError::BadRequest(want.into())
}

// ------------------------------------------------------------ profile 1
// Form POST, cumulative input, CON/END text: the Africa's Talking shape,
// as a local aggregator that copied it would send it.

const FORM_CUMULATIVE: &str = r#"
format = "form"
session_field = "sessionId"
phone_field = "phoneNumber"
text_field = "text"
service_code_field = "serviceCode"
input = "cumulative"
reply = "text"
"#;

#[test]
fn form_cumulative_parses_the_fields_and_ignores_extras() {
    let c = channel(FORM_CUMULATIVE);
    let r = c
        .parse_ussd(&post(
            "sessionId=ATUid_1&serviceCode=%2A384%2A1%23&phoneNumber=%2B996555123456&networkCode=43701&text=1%2A2&extra=x",
        ))
        .unwrap();
    assert_eq!(r.session_id, "ATUid_1");
    assert_eq!(r.service_code, "*384*1#");
    assert_eq!(r.from.as_str(), "+996555123456");
    assert_eq!(r.input, UssdInput::Cumulative("1*2".into()));
    // First hop: text empty, or absent altogether; a number without `+`.
    for body in [
        "sessionId=s2&serviceCode=%2A384%23&phoneNumber=380501234567&text=",
        "sessionId=s2&serviceCode=%2A384%23&phoneNumber=380501234567",
    ] {
        let r = c.parse_ussd(&post(body)).unwrap();
        assert_eq!(r.input, UssdInput::Cumulative(String::new()), "{body}");
        assert_eq!(r.from.as_str(), "+380501234567");
    }
}

#[test]
fn form_cumulative_missing_and_malformed_fields_are_named_without_values() {
    let c = channel(FORM_CUMULATIVE);
    let cases = [
        (
            "serviceCode=1&phoneNumber=%2B996555123456&text=",
            "missing field `sessionId`",
        ),
        (
            "sessionId=a&serviceCode=1&text=",
            "missing field `phoneNumber`",
        ),
        (
            "sessionId=a&phoneNumber=%2B996555123456&text=",
            "missing field `serviceCode`",
        ),
        (
            "sessionId=a&serviceCode=1&phoneNumber=hello",
            "phoneNumber: phone number has a character that is not a digit",
        ),
        (
            "sessionId=a&serviceCode=1&phoneNumber=%2B12",
            "phoneNumber: phone number has the wrong number of digits",
        ),
        (
            "sessionId=&serviceCode=1&phoneNumber=%2B996555123456",
            "sessionId is not a valid id",
        ),
        (
            "sessionId=a%20b&serviceCode=1&phoneNumber=%2B996555123456",
            "sessionId is not a valid id",
        ),
        (
            "sessionId=a&sessionId=b&serviceCode=1&phoneNumber=%2B996555123456",
            "duplicate field `sessionId`",
        ),
        (
            "sessionId=a&serviceCode=%2A1%0A%23&phoneNumber=%2B996555123456",
            "serviceCode is not a service code",
        ),
        // Bytes that are not UTF-8, and bad escapes, are refused whole.
        (
            "sessionId=%FF&serviceCode=1",
            "body is not a valid form: not valid UTF-8",
        ),
        (
            "sessionId=a&serviceCode=1&phoneNumber=%2B996555123456&text=%zz",
            "body is not a valid form: bad percent-encoding",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(c.parse_ussd(&post(body)).unwrap_err(), bad(want), "{body}");
    }
    let long = format!(
        "sessionId=a&serviceCode=1&phoneNumber=%2B996555123456&text={}",
        "1*".repeat(MAX_TEXT_BYTES)
    );
    assert_eq!(
        c.parse_ussd(&post(&long)).unwrap_err(),
        bad("text is too long")
    );
}

#[test]
fn form_cumulative_replies_are_con_or_end_plain_text() {
    let c = channel(FORM_CUMULATIVE);
    let r = c.render_ussd_in_session("s1", "Где вы?\n1 Бишкек", false);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "CON Где вы?\n1 Бишкек");
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(c.render_ussd("Bye", true).body, "END Bye");
    let e = c.render_error(StatusCode::BAD_REQUEST, "missing field `text`\n");
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.body, "missing field `text`\n");
    assert!(e.content_type.starts_with("text/plain"));
}

#[test]
fn a_custom_separator_is_normalised_to_star() {
    let c = channel(&format!("{FORM_CUMULATIVE}input_separator = \"#\"\n"));
    let r = c
        .parse_ussd(&post(
            "sessionId=a&serviceCode=1&phoneNumber=%2B996555123456&text=1%232%23Station+5",
        ))
        .unwrap();
    assert_eq!(r.input, UssdInput::Cumulative("1*2*Station 5".into()));
}

// ------------------------------------------------------------ profile 2
// JSON POST with nested fields, latest input with a begin marker, JSON
// reply with an action field and the session id echoed.

const JSON_LATEST: &str = r#"
secret_env = "OP_SECRET"
format = "json"
session_field = "session.id"
phone_field = "subscriber.msisdn"
text_field = "input"
service_code_field = "ussdCode"
new_session_field = "type"
new_session_value = "begin"
input = "latest"
reply = "json"
reply_text_field = "text"
reply_action_field = "action"
reply_continue_value = "request"
reply_end_value = "end"
reply_session_echo = true
"#;

/// docs/ussd-adapter.md says a set `service_code_field` is required on
/// every hop, quoting the refusal: the quote and the code agree.
#[test]
fn a_set_service_code_field_is_required_on_every_hop_as_documented() {
    let c = channel(JSON_LATEST);
    let later = r#"{"session": {"id": "AT-7f3a9"}, "subscriber": {"msisdn": "996555123456"},
        "type": "continue", "input": "2"}"#;
    let Err(ChannelError::BadRequest(reason)) = c.parse_ussd(&post(later)) else {
        panic!("a hop without ussdCode is refused");
    };
    assert_eq!(reason, "missing field `ussdCode`");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ussd-adapter.md"))
        .unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `service_code_field` |"))
        .expect("the settings table has service_code_field");
    assert!(row.contains("once set, every hop must carry it"), "{row}");
    assert!(
        row.contains(&format!("400 and the reason {reason}")),
        "{row}"
    );
}

#[test]
fn json_latest_parses_nested_fields_and_the_begin_marker() {
    let c = channel(JSON_LATEST);
    let begin = r#"{
        "session": {"id": "AT-7f3a9", "startedAt": "2025-03-01T10:00:00Z"},
        "subscriber": {"msisdn": "996555123456", "network": "ala-too"},
        "ussdCode": "*384*1#",
        "type": "begin",
        "input": "*384*1#",
        "channel": {"hops": 1, "tags": ["a", "b"]}
    }"#;
    let r = c.parse_ussd(&post(begin)).unwrap();
    assert_eq!(r.session_id, "AT-7f3a9");
    assert_eq!(r.from.as_str(), "+996555123456");
    assert_eq!(r.service_code, "*384*1#");
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: "*384*1#".into(),
            first: true
        }
    );
    // A later hop: numbers as JSON numbers, an answer that is not the code.
    let next = r#"{"session":{"id":48213},"subscriber":{"msisdn":380501234567},
        "ussdCode":"*384*1#","type":"continue","input":"2"}"#;
    let r = c.parse_ussd(&post(next)).unwrap();
    assert_eq!(r.session_id, "48213");
    assert_eq!(r.from.as_str(), "+380501234567");
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: "2".into(),
            first: false
        }
    );
    // The marker decides, not the text: an empty answer mid-session.
    let r = c
        .parse_ussd(&post(
            r#"{"session":{"id":"s"},"subscriber":{"msisdn":"+996555123456"},"ussdCode":"*1#","type":"continue","input":null}"#,
        ))
        .unwrap();
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: String::new(),
            first: false
        }
    );
}

#[test]
fn json_latest_missing_and_malformed_fields_are_named_without_values() {
    let c = channel(JSON_LATEST);
    let cases = [
        (
            r#"{"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin"}"#,
            "missing field `session.id`",
        ),
        (
            r#"{"session":"s1","subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin"}"#,
            "missing field `session.id`",
        ),
        (
            r#"{"session":{"id":"s1"},"ussdCode":"*1#","type":"begin"}"#,
            "missing field `subscriber.msisdn`",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"996555123456"},"type":"begin"}"#,
            "missing field `ussdCode`",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","input":"1"}"#,
            "missing field `type`",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"99655512345x"},"ussdCode":"*1#","type":"begin"}"#,
            "subscriber.msisdn: phone number has a character that is not a digit",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":9965551234.5},"ussdCode":"*1#","type":"begin"}"#,
            "field `subscriber.msisdn` is not a string",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin","input":{"v":"1"}}"#,
            "field `input` is not a string",
        ),
        (
            r#"{"session":{"id":"s 1"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin"}"#,
            "session.id is not a valid id",
        ),
        (r#"{"session":{"id":"s1"},"#, "body is not valid JSON"),
        // A key twice, at any depth, is refused (serde_json alone keeps the
        // last one).
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin","input":"1","input":"2"}"#,
            "body is not valid JSON: an object has a key twice",
        ),
        (
            r#"{"session":{"id":"s1","id":"s2"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin"}"#,
            "body is not valid JSON: an object has a key twice",
        ),
        (
            r#"{"session":{"id":"s1"},"subscriber":{"msisdn":"996555123456"},"ussdCode":"*1#","type":"begin","extra":[{"a":1,"a":2}]}"#,
            "body is not valid JSON: an object has a key twice",
        ),
        ("sessionId=s1&text=1", "body is not valid JSON"),
        (r#"[{"session":{"id":"s1"}}]"#, "body is not a JSON object"),
    ];
    for (body, want) in cases {
        assert_eq!(c.parse_ussd(&post(body)).unwrap_err(), bad(want), "{body}");
    }
}

#[test]
fn json_latest_replies_carry_text_action_and_session() {
    let c = channel(JSON_LATEST);
    let r = c.render_ussd_in_session("AT-7f3a9", "Где вы?\n1 Бишкек", false);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.body,
        r#"{"action":"request","session":{"id":"AT-7f3a9"},"text":"Где вы?\n1 Бишкек"}"#
    );
    let r = c.render_ussd_in_session("AT-7f3a9", "Адвокат \"скоро\"", true);
    assert_eq!(
        r.body,
        r#"{"action":"end","session":{"id":"AT-7f3a9"},"text":"Адвокат \"скоро\""}"#
    );
    let e = c.render_error(StatusCode::FORBIDDEN, "forbidden\n");
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert_eq!(e.content_type, "application/json");
    assert_eq!(e.body, r#"{"error":"forbidden"}"#);
    let e = c.render_error(StatusCode::BAD_REQUEST, "missing field `session.id`\n");
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.body, r#"{"error":"missing field `session.id`"}"#);
}

#[test]
fn json_latest_authenticates_by_secret_and_takes_only_post() {
    let c = channel(JSON_LATEST);
    let mut r = post("{}");
    assert_eq!(c.authenticate(&r), Err(ChannelError::Forbidden));
    r.query = Some("secret=wrong".into());
    assert_eq!(c.authenticate(&r), Err(ChannelError::Forbidden));
    r.query = Some("secret=s3cret".into());
    assert_eq!(c.authenticate(&r), Ok(()));
    let mut r = post("{}");
    // "alatoo:s3cret"
    r.headers.insert(
        http::header::AUTHORIZATION,
        "Basic YWxhdG9vOnMzY3JldA==".parse().unwrap(),
    );
    assert_eq!(c.authenticate(&r), Ok(()));
    assert_eq!(c.methods(Event::Ussd), Some(&[Method::POST][..]));
    assert_eq!(c.methods(Event::Sms), None);
    assert_eq!(c.methods(Event::Status), None);
    assert_eq!(c.kind(), ChannelKind::Ussd);
    assert_eq!(c.name(), "op");
}

// ------------------------------------------------------------ profile 3
// GET with the fields in the query string, latest input, an `op` field
// that says `begin` on the first hop; FC/FB text replies; IP allow-list.

const QUERY_LATEST: &str = r#"
allow_ips = ["198.51.100.0/24"]
format = "query"
session_field = "sid"
phone_field = "msisdn"
text_field = "msg"
service_code_field = "code"
new_session_field = "op"
new_session_value = "begin"
input = "latest"
reply = "text"
continue_prefix = "FC\n"
end_prefix = "FB\n"
"#;

#[test]
fn query_latest_reads_the_query_string_of_a_get() {
    let c = channel(QUERY_LATEST);
    assert_eq!(
        c.methods(Event::Ussd),
        Some(&[Method::GET, Method::POST][..])
    );
    let r = c
        .parse_ussd(&get(
            "sid=995-77123&msisdn=995599123456&msg=&code=%2A555%23&op=begin&lang=ka&ts=1718000000",
        ))
        .unwrap();
    assert_eq!(r.session_id, "995-77123");
    assert_eq!(r.from.as_str(), "+995599123456");
    assert_eq!(r.service_code, "*555#");
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: String::new(),
            first: true
        }
    );
    // A later hop, POSTed with the fields still in the query and a body
    // that is ignored.
    let mut req = post("sid=other&msisdn=1");
    req.query = Some(
        "sid=995-77123&msisdn=995599123456&msg=%D0%B4%D0%B0&code=%2A555%23&op=continue".into(),
    );
    let r = c.parse_ussd(&req).unwrap();
    assert_eq!(r.session_id, "995-77123");
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: "да".into(),
            first: false
        }
    );
}

#[test]
fn query_latest_missing_and_malformed_fields() {
    let c = channel(QUERY_LATEST);
    let cases = [
        (
            "msisdn=995599123456&msg=1&code=1&op=continue",
            "missing field `sid`",
        ),
        ("sid=1&msg=1&code=1&op=continue", "missing field `msisdn`"),
        (
            "sid=1&msisdn=995599123456&msg=1&op=continue",
            "missing field `code`",
        ),
        (
            "sid=1&msisdn=995599123456&msg=1&code=1",
            "missing field `op`",
        ),
        (
            "sid=1&msisdn=0599123456&msg=1&code=1&op=continue",
            "msisdn: phone number has the wrong number of digits",
        ),
        (
            "sid=1&msisdn=995599123456&msg=1&msg=2&code=1&op=continue",
            "duplicate field `msg`",
        ),
        (
            "sid=%C3%28&msisdn=995599123456&code=1&op=begin",
            "query string is not a valid form",
        ),
    ];
    for (query, want) in cases {
        assert_eq!(c.parse_ussd(&get(query)).unwrap_err(), bad(want), "{query}");
    }
    // No query string at all.
    let mut r = get("");
    r.query = None;
    assert_eq!(c.parse_ussd(&r).unwrap_err(), bad("missing field `sid`"));
}

#[test]
fn query_latest_replies_and_allow_list() {
    let c = channel(QUERY_LATEST);
    assert_eq!(
        c.render_ussd_in_session("s", "Выберите:\n1 Да", false).body,
        "FC\nВыберите:\n1 Да"
    );
    assert_eq!(
        c.render_ussd_in_session("s", "Спасибо", true).body,
        "FB\nСпасибо"
    );
    let mut r = get("sid=1");
    assert_eq!(c.authenticate(&r), Err(ChannelError::Forbidden));
    r.peer = "198.51.100.20".parse().unwrap();
    assert_eq!(c.authenticate(&r), Ok(()));
}

// ------------------------------------------------------------ profile 4
// Form POST, latest input without a marker (the first hop's text is empty
// or the dialled code), JSON reply with a boolean end flag.

const FORM_LATEST_FLAG: &str = r#"
format = "form"
session_field = "SESSIONID"
phone_field = "MSISDN"
text_field = "USERDATA"
service_code_field = "SERVICECODE"
input = "latest"
reply = "json"
reply_text_field = "MSG"
reply_end_field = "END"
"#;

#[test]
fn latest_without_a_marker_spots_the_first_hop_by_its_text() {
    let c = channel(FORM_LATEST_FLAG);
    let hop = |data: &str| {
        c.parse_ussd(&post(&format!(
            "SESSIONID=16032&MSISDN=380671234567&SERVICECODE=%2A911%23&USERDATA={data}&NETWORK=kyivstar"
        )))
        .unwrap()
        .input
    };
    let first = |text: &str| UssdInput::Latest {
        text: text.into(),
        first: true,
    };
    assert_eq!(hop(""), first(""));
    assert_eq!(hop("%2A911%23"), first("*911#"));
    assert_eq!(
        hop("3"),
        UssdInput::Latest {
            text: "3".into(),
            first: false
        }
    );
    // Without a service code field only an empty text opens a session.
    let c = channel(&FORM_LATEST_FLAG.replace("service_code_field = \"SERVICECODE\"\n", ""));
    let r = c
        .parse_ussd(&post("SESSIONID=1&MSISDN=380671234567&USERDATA=%2A911%23"))
        .unwrap();
    assert_eq!(r.service_code, "");
    assert_eq!(
        r.input,
        UssdInput::Latest {
            text: "*911#".into(),
            first: false
        }
    );
}

#[test]
fn a_hop_id_field_names_each_hop_and_is_only_for_latest_input() {
    let with_id = FORM_LATEST_FLAG.replace(
        "input = \"latest\"",
        "input = \"latest\"\nhop_id_field = \"REQID\"",
    );
    let c = channel(&with_id);
    let hop = |body: &str| c.parse_ussd(&post(body));
    let r = hop("SESSIONID=1&MSISDN=380671234567&SERVICECODE=1&USERDATA=3&REQID=r-17").unwrap();
    assert_eq!(r.hop_id.as_deref(), Some("r-17"));
    assert_eq!(
        hop("SESSIONID=1&MSISDN=380671234567&SERVICECODE=1&USERDATA=3").unwrap_err(),
        bad("missing field `REQID`")
    );
    assert_eq!(
        hop("SESSIONID=1&MSISDN=380671234567&SERVICECODE=1&USERDATA=3&REQID=a%20b").unwrap_err(),
        bad("REQID is not a valid id")
    );
    // Without the setting, no hop id.
    let r = channel(FORM_LATEST_FLAG)
        .parse_ussd(&post(
            "SESSIONID=1&MSISDN=380671234567&SERVICECODE=1&USERDATA=3&REQID=r-17",
        ))
        .unwrap();
    assert_eq!(r.hop_id, None);
    // A cumulative text tells its hops apart.
    let p = problems(&FORM_CUMULATIVE.replace(
        "input = \"cumulative\"",
        "input = \"cumulative\"\nhop_id_field = \"REQID\"",
    ));
    assert!(
        p.iter()
            .any(|l| l.contains("hop_id_field") && l.contains("only used with input = \"latest\"")),
        "{p:#?}"
    );
}

#[test]
fn a_boolean_end_flag_is_true_only_on_the_last_screen() {
    let c = channel(FORM_LATEST_FLAG);
    assert_eq!(
        c.render_ussd_in_session("16032", "Оберіть місто", false)
            .body,
        r#"{"END":false,"MSG":"Оберіть місто"}"#
    );
    assert_eq!(
        c.render_ussd_in_session("16032", "Дякуємо", true).body,
        r#"{"END":true,"MSG":"Дякуємо"}"#
    );
}

#[test]
fn dotted_reply_fields_nest_objects() {
    let c = channel(
        r#"
format = "json"
session_field = "sessionId"
phone_field = "msisdn"
text_field = "text"
input = "cumulative"
reply = "json"
reply_text_field = "response.text"
reply_end_field = "response.close"
reply_session_echo = true
"#,
    );
    assert_eq!(
        c.render_ussd_in_session("s9", "Hi", true).body,
        r#"{"response":{"close":true,"text":"Hi"},"sessionId":"s9"}"#
    );
}

#[test]
fn form_field_names_with_dots_are_taken_literally() {
    let c = channel(
        r#"
format = "form"
session_field = "session.id"
phone_field = "msisdn"
text_field = "text"
input = "cumulative"
reply = "text"
"#,
    );
    let r = c
        .parse_ussd(&post("session.id=s1&msisdn=996555123456&text=1"))
        .unwrap();
    assert_eq!(r.session_id, "s1");
}

mod settings;
