//! Reading a `kind = "ussd"` channel's settings (documented in [`super`])
//! into a [`Ussd`]: where the request's fields are, how the input arrives,
//! how replies are written, and every contradiction between them, each
//! named by key.

use serde::Deserialize;

use super::{EndMark, Field, Format, Input, ReplyStyle, Ussd};
use crate::channel::SharedSecretAuth;
use crate::channel::settings::{Checks, Choice, flag, one_of, text};

/// The settings of `kind = "ussd"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default, deserialize_with = "one_of")]
    format: Option<Format>,
    #[serde(default, deserialize_with = "text")]
    session_field: Option<String>,
    #[serde(default, deserialize_with = "text")]
    phone_field: Option<String>,
    #[serde(default, deserialize_with = "text")]
    text_field: Option<String>,
    service_code_field: Option<String>,
    new_session_field: Option<String>,
    new_session_value: Option<String>,
    hop_id_field: Option<String>,
    #[serde(default, deserialize_with = "one_of")]
    input: Option<InputKind>,
    input_separator: Option<String>,
    #[serde(default, deserialize_with = "one_of")]
    reply: Option<ReplyKind>,
    continue_prefix: Option<String>,
    end_prefix: Option<String>,
    reply_text_field: Option<String>,
    reply_end_field: Option<String>,
    reply_action_field: Option<String>,
    reply_continue_value: Option<String>,
    reply_end_value: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    reply_session_echo: bool,
}

impl Choice for Format {
    const ALL: &'static [(&'static str, Self)] = &[
        ("form", Format::Form),
        ("json", Format::Json),
        ("query", Format::Query),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Cumulative,
    Latest,
}

impl Choice for InputKind {
    const ALL: &'static [(&'static str, Self)] = &[
        ("cumulative", InputKind::Cumulative),
        ("latest", InputKind::Latest),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Text,
    Json,
}

impl Choice for ReplyKind {
    const ALL: &'static [(&'static str, Self)] =
        &[("text", ReplyKind::Text), ("json", ReplyKind::Json)];
}

/// The request's fields; `None` where a required one is missing.
struct RequestFields {
    session: Option<Field>,
    phone: Option<Field>,
    text: Option<Field>,
    service_code: Option<Field>,
    new_session: Option<Field>,
    hop_id: Option<Field>,
}

impl Ussd {
    /// From the channel's settings; `None` (with problems in `checks`)
    /// when a required one is missing.
    pub fn new(checks: &mut Checks<'_>) -> Option<Self> {
        let s: Settings = checks.read()?;
        let cfg = checks.cfg();
        let format = checks.required("format", s.format);
        let format = format.unwrap_or(Format::Form);
        let fields = request_fields(checks, &s, format);
        let input = input(checks, &s, fields.new_session, fields.hop_id);
        let reply = reply(checks, &s, fields.session.as_ref());
        Some(Ussd {
            name: cfg.name.clone(),
            auth: SharedSecretAuth::from_config(cfg),
            format,
            session: fields.session?,
            phone: fields.phone?,
            text: fields.text?,
            service_code: fields.service_code,
            input,
            reply,
        })
    }
}

/// A field named by `key`: its path has one part unless dotted names nest.
fn field(checks: &mut Checks<'_>, key: &str, name: String, nest: bool) -> Field {
    Field {
        path: path_of(checks, key, &name, nest),
        name,
    }
}

/// The request's fields, each in its own place.
fn request_fields(checks: &mut Checks<'_>, s: &Settings, format: Format) -> RequestFields {
    let nest = format == Format::Json;
    let mut required = |key: &str, name: &Option<String>| {
        let name = checks.required(key, name.clone())?;
        Some(field(checks, key, name, nest))
    };
    let session = required("session_field", &s.session_field);
    let phone = required("phone_field", &s.phone_field);
    let text = required("text_field", &s.text_field);
    let mut optional =
        |key: &str, name: &Option<String>| name.clone().map(|n| field(checks, key, n, nest));
    let service_code = optional("service_code_field", &s.service_code_field);
    let new_session = optional("new_session_field", &s.new_session_field);
    let hop_id = optional("hop_id_field", &s.hop_id_field);
    let named = [
        ("session_field", &session),
        ("phone_field", &phone),
        ("text_field", &text),
        ("service_code_field", &service_code),
        ("new_session_field", &new_session),
        ("hop_id_field", &hop_id),
    ];
    let paths: Vec<(&str, &[String])> = named
        .iter()
        .filter_map(|(key, f)| Some((*key, f.as_ref()?.path.as_slice())))
        .filter(|(_, p)| p.iter().all(|s| !s.is_empty()))
        .collect();
    check_distinct(checks, &paths);
    if format == Format::Query && checks.cfg().secret.is_some() {
        for (key, path) in &paths {
            if *path == ["secret"] {
                let msg = "with format = \"query\" this is where the shared secret goes";
                checks.problem(key, Some("secret"), msg);
            }
        }
    }
    RequestFields {
        session,
        phone,
        text,
        service_code,
        new_session,
        hop_id,
    }
}

/// How the input arrives (cumulative when `input` is missing or bad, so
/// the rest is still checked).
fn input(
    checks: &mut Checks<'_>,
    s: &Settings,
    new_session_field: Option<Field>,
    hop_id: Option<Field>,
) -> Input {
    let kind = checks.required("input", s.input);
    if kind == Some(InputKind::Latest) {
        if s.input_separator.is_some() {
            let msg = "only used with input = \"cumulative\"";
            checks.problem("input_separator", None, msg);
        }
        let new_session = match (new_session_field, s.new_session_value.clone()) {
            (Some(f), Some(v)) => Some((f, v)),
            (Some(_), None) => {
                let msg = "missing: new_session_field needs the value that marks a first hop";
                checks.problem("new_session_value", None, msg);
                None
            }
            (None, Some(_)) => {
                let msg = "missing: new_session_value needs the field that carries it";
                checks.problem("new_session_field", None, msg);
                None
            }
            (None, None) => None,
        };
        return Input::Latest {
            new_session,
            hop_id,
        };
    }
    if kind.is_some() {
        for key in ["new_session_field", "new_session_value"] {
            if checks.given(key) {
                let msg = "only used with input = \"latest\" (a cumulative text is empty on the first hop)";
                checks.problem(key, None, msg);
            }
        }
        if checks.given("hop_id_field") {
            let msg = "only used with input = \"latest\" (a cumulative text tells its hops apart)";
            checks.problem("hop_id_field", None, msg);
        }
    }
    let sep = s.input_separator.as_deref().unwrap_or("*");
    let mut chars = sep.chars();
    let separator = match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_alphanumeric() && !c.is_whitespace() => c,
        _ => {
            let msg = "must be exactly one character that is not a letter, digit or space";
            checks.problem("input_separator", Some(sep), msg);
            '*'
        }
    };
    Input::Cumulative { separator }
}

/// How replies are written (text when `reply` is missing or bad, so the
/// rest is still checked).
fn reply(checks: &mut Checks<'_>, s: &Settings, session: Option<&Field>) -> ReplyStyle {
    let kind = checks.required("reply", s.reply);
    if kind == Some(ReplyKind::Json) {
        return json_reply(checks, s, session);
    }
    if kind.is_some() {
        for key in [
            "reply_text_field",
            "reply_end_field",
            "reply_action_field",
            "reply_continue_value",
            "reply_end_value",
        ] {
            if checks.given(key) {
                checks.problem(key, None, "only used with reply = \"json\"");
            }
        }
        if s.reply_session_echo {
            let msg = "only used with reply = \"json\"";
            checks.problem("reply_session_echo", Some("true"), msg);
        }
    }
    let continue_prefix = s.continue_prefix.clone().unwrap_or_else(|| "CON ".into());
    let end_prefix = s.end_prefix.clone().unwrap_or_else(|| "END ".into());
    if continue_prefix == end_prefix {
        let msg = "must differ from continue_prefix, or the operator cannot tell a last screen";
        checks.problem("end_prefix", Some(&end_prefix), msg);
    }
    ReplyStyle::Text {
        continue_prefix,
        end_prefix,
    }
}

/// A JSON reply: its text, its end mark and the echoed session id, each in
/// its own place.
fn json_reply(checks: &mut Checks<'_>, s: &Settings, session: Option<&Field>) -> ReplyStyle {
    for key in ["continue_prefix", "end_prefix"] {
        if checks.given(key) {
            checks.problem(key, None, "only used with reply = \"text\"");
        }
    }
    let text_name = s.reply_text_field.as_deref().unwrap_or("message");
    let text_path = path_of(checks, "reply_text_field", text_name, true);
    let end = end_mark(checks, s);
    let session_echo = session
        .filter(|_| s.reply_session_echo)
        .map(|f| f.path.clone());
    let mut paths: Vec<(&str, &[String])> = vec![("reply_text_field", &text_path)];
    if let Some((key, EndMark::Flag(p) | EndMark::Action { field: p, .. })) = &end {
        paths.push((key, p));
    }
    if let Some(p) = &session_echo {
        paths.push(("reply_session_echo", p));
    }
    paths.retain(|(_, p)| p.iter().all(|s| !s.is_empty()));
    check_distinct(checks, &paths);
    ReplyStyle::Json {
        text_field: text_path,
        end: end.map_or(EndMark::Flag(vec!["end".into()]), |(_, e)| e),
        session_echo,
    }
}

/// How a JSON reply marks the last screen, and the key that says so.
fn end_mark(checks: &mut Checks<'_>, s: &Settings) -> Option<(&'static str, EndMark)> {
    match (&s.reply_end_field, &s.reply_action_field) {
        (Some(_), Some(_)) => {
            let msg = "set reply_end_field or reply_action_field, not both";
            checks.problem("reply_action_field", None, msg);
            None
        }
        (None, None) => {
            let msg = "needs reply_end_field (true on the last screen) or reply_action_field with reply_continue_value and reply_end_value";
            checks.problem("reply", Some("json"), msg);
            None
        }
        (Some(f), None) => {
            for key in ["reply_continue_value", "reply_end_value"] {
                if checks.given(key) {
                    checks.problem(key, None, "only used with reply_action_field");
                }
            }
            let path = path_of(checks, "reply_end_field", f, true);
            Some(("reply_end_field", EndMark::Flag(path)))
        }
        (None, Some(f)) => {
            let field = path_of(checks, "reply_action_field", f, true);
            let mut need = |key: &str, v: &Option<String>| {
                v.clone().unwrap_or_else(|| {
                    checks.problem(key, None, "missing: reply_action_field needs it");
                    String::new()
                })
            };
            let continue_value = need("reply_continue_value", &s.reply_continue_value);
            let end_value = need("reply_end_value", &s.reply_end_value);
            if continue_value == end_value && !end_value.is_empty() {
                let msg = "must differ from reply_continue_value";
                checks.problem("reply_end_value", Some(&end_value), msg);
            }
            let mark = EndMark::Action {
                field,
                continue_value,
                end_value,
            };
            Some(("reply_action_field", mark))
        }
    }
}

/// Split a field name into its path; dotted names nest only when `nest`.
fn path_of(checks: &mut Checks<'_>, key: &str, name: &str, nest: bool) -> Vec<String> {
    if !nest {
        return vec![name.to_owned()];
    }
    let path: Vec<String> = name.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        checks.problem(key, Some(name), "has an empty part between dots");
    }
    path
}

/// Whether two paths would hold the same value, or one would have to be
/// both a value and an object (`a` and `a.b`).
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Report every later path that overlaps an earlier one.
fn check_distinct(checks: &mut Checks<'_>, paths: &[(&str, &[String])]) {
    for (i, (key, path)) in paths.iter().enumerate() {
        if let Some((other, _)) = paths[..i].iter().find(|(_, p)| overlaps(p, path)) {
            let msg = format!("overlaps {other}: each field needs its own place");
            checks.problem(key, Some(&path.join(".")), msg);
        }
    }
}
