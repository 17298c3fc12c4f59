//! The settings of `kind = "ussd"`: every missing, wrong or contradictory
//! one is named by its key.

use super::*;

const FIELDS: &str = r#"
session_field = "sid"
phone_field = "msisdn"
text_field = "text"
"#;

#[test]
fn missing_settings_are_each_named() {
    assert_eq!(
        problems(""),
        vec![
            "c.toml: channels[0].format: missing: ussd channels need it",
            "c.toml: channels[0].session_field: missing: ussd channels need it",
            "c.toml: channels[0].phone_field: missing: ussd channels need it",
            "c.toml: channels[0].text_field: missing: ussd channels need it",
            "c.toml: channels[0].input: missing: ussd channels need it",
            "c.toml: channels[0].reply: missing: ussd channels need it",
        ]
    );
}

#[test]
fn wrong_and_contradictory_request_settings_are_each_named_by_key() {
    let base = format!("{FIELDS}format = \"form\"\n");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            FIELDS.to_owned() + "format = \"xml\"\ninput = \"latest\"\nreply = \"text\"\n",
            vec![r#"c.toml: channels[0].format = "xml": must be one of: form, json, query"#],
        ),
        (
            base.clone() + "input = \"all\"\nreply = \"text\"\n",
            vec![r#"c.toml: channels[0].input = "all": must be one of: cumulative, latest"#],
        ),
        (
            base.clone() + "input = \"latest\"\nreply = \"xml\"\n",
            vec![r#"c.toml: channels[0].reply = "xml": must be one of: text, json"#],
        ),
        (
            base.clone() + "input = \"cumulative\"\ninput_separator = \"**\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].input_separator = "**": must be exactly one character that is not a letter, digit or space"#,
            ],
        ),
        (
            base.clone() + "input = \"cumulative\"\ninput_separator = \"\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].input_separator = "": must be exactly one character that is not a letter, digit or space"#,
            ],
        ),
        (
            base.clone() + "input = \"cumulative\"\ninput_separator = \"1\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].input_separator = "1": must be exactly one character that is not a letter, digit or space"#,
            ],
        ),
        (
            base.clone() + "input = \"latest\"\ninput_separator = \"#\"\nreply = \"text\"\n",
            vec![r#"c.toml: channels[0].input_separator: only used with input = "cumulative""#],
        ),
        (
            base.clone()
                + "input = \"cumulative\"\nnew_session_field = \"type\"\nnew_session_value = \"begin\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].new_session_field: only used with input = "latest" (a cumulative text is empty on the first hop)"#,
                r#"c.toml: channels[0].new_session_value: only used with input = "latest" (a cumulative text is empty on the first hop)"#,
            ],
        ),
        (
            base.clone() + "input = \"latest\"\nnew_session_field = \"type\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].new_session_value: missing: new_session_field needs the value that marks a first hop"#,
            ],
        ),
        (
            base.clone() + "input = \"latest\"\nnew_session_value = \"begin\"\nreply = \"text\"\n",
            vec![
                r#"c.toml: channels[0].new_session_field: missing: new_session_value needs the field that carries it"#,
            ],
        ),
    ];
    for (settings, want) in cases {
        assert_eq!(problems(&settings), want, "{settings}");
    }
}

#[test]
fn wrong_and_contradictory_reply_settings_are_each_named_by_key() {
    let base = format!("{FIELDS}format = \"form\"\n");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            base.clone() + "input = \"latest\"\nreply = \"json\"\n",
            vec![
                r#"c.toml: channels[0].reply = "json": needs reply_end_field (true on the last screen) or reply_action_field with reply_continue_value and reply_end_value"#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"json\"\nreply_end_field = \"end\"\nreply_action_field = \"action\"\n",
            vec![
                r#"c.toml: channels[0].reply_action_field: set reply_end_field or reply_action_field, not both"#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"json\"\nreply_action_field = \"action\"\n",
            vec![
                r#"c.toml: channels[0].reply_continue_value: missing: reply_action_field needs it"#,
                r#"c.toml: channels[0].reply_end_value: missing: reply_action_field needs it"#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"json\"\nreply_action_field = \"action\"\nreply_continue_value = \"end\"\nreply_end_value = \"end\"\n",
            vec![
                r#"c.toml: channels[0].reply_end_value = "end": must differ from reply_continue_value"#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"json\"\nreply_end_field = \"end\"\nreply_end_value = \"x\"\n",
            vec![r#"c.toml: channels[0].reply_end_value: only used with reply_action_field"#],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"json\"\nreply_end_field = \"end\"\ncontinue_prefix = \"CON \"\n",
            vec![r#"c.toml: channels[0].continue_prefix: only used with reply = "text""#],
        ),
        (
            base.clone() + "input = \"latest\"\nreply = \"json\"\nreply_end_field = \"message\"\n",
            vec![
                r#"c.toml: channels[0].reply_end_field = "message": overlaps reply_text_field: each field needs its own place"#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"text\"\nreply_end_field = \"end\"\nreply_session_echo = true\n",
            vec![
                r#"c.toml: channels[0].reply_end_field: only used with reply = "json""#,
                r#"c.toml: channels[0].reply_session_echo = "true": only used with reply = "json""#,
            ],
        ),
        (
            base.clone()
                + "input = \"latest\"\nreply = \"text\"\ncontinue_prefix = \"X\"\nend_prefix = \"X\"\n",
            vec![
                r#"c.toml: channels[0].end_prefix = "X": must differ from continue_prefix, or the operator cannot tell a last screen"#,
            ],
        ),
        (
            base.clone() + "input = \"latest\"\nreply = \"text\"\nreply_session_echo = \"yes\"\n",
            vec![r#"c.toml: channels[0].reply_session_echo = "\"yes\"": must be true or false"#],
        ),
        (
            base.clone() + "input = \"latest\"\nreply = \"text\"\ncontinue_prefx = \"C \"\n",
            vec!["c.toml: channels[0].continue_prefx: unknown setting for ussd channels"],
        ),
    ];
    for (settings, want) in cases {
        assert_eq!(problems(&settings), want, "{settings}");
    }
}

#[test]
fn fields_that_collide_or_are_malformed_are_named_by_key() {
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "session_field = \"sid\"\nphone_field = \"sid\"\ntext_field = \"text\"\nformat = \"form\"\ninput = \"latest\"\nreply = \"text\"\n".to_owned(),
            vec![
                r#"c.toml: channels[0].phone_field = "sid": overlaps session_field: each field needs its own place"#,
            ],
        ),
        (
            "session_field = \"session\"\nphone_field = \"session.msisdn\"\ntext_field = \"text\"\nformat = \"json\"\ninput = \"latest\"\nreply = \"text\"\n".to_owned(),
            vec![
                r#"c.toml: channels[0].phone_field = "session.msisdn": overlaps session_field: each field needs its own place"#,
            ],
        ),
        (
            "session_field = \"session..id\"\nphone_field = \"msisdn\"\ntext_field = \"text\"\nformat = \"json\"\ninput = \"latest\"\nreply = \"text\"\n".to_owned(),
            vec![r#"c.toml: channels[0].session_field = "session..id": has an empty part between dots"#],
        ),
        (
            "secret_env = \"OP_SECRET\"\nsession_field = \"sid\"\nphone_field = \"msisdn\"\ntext_field = \"secret\"\nformat = \"query\"\ninput = \"latest\"\nreply = \"text\"\n".to_owned(),
            vec![
                r#"c.toml: channels[0].text_field = "secret": with format = "query" this is where the shared secret goes"#,
            ],
        ),
        (
            "session_field = \"\"\nphone_field = \"msisdn\"\ntext_field = \"text\"\nformat = \"form\"\ninput = \"latest\"\nreply = \"text\"\n".to_owned(),
            vec![r#"c.toml: channels[0].session_field = "": must not be empty"#],
        ),
    ];
    for (settings, want) in cases {
        assert_eq!(problems(&settings), want, "{settings}");
    }
}
