//! The one template renderer: `{name}` placeholders filled in one pass.
//!
//! Every text with placeholders — a flow's screens (`{code}`,
//! `{fallback}`), the SMS help (`{keywords}`), lawyers' texts (`{code}`,
//! `{minutes}`, `{location}`, …) — is filled here and nowhere else.
//!
//! One pass means a value is never read as a template again: a woman who
//! types `{code}` as her location sees those six characters in the
//! lawyer's offer, not somebody's case code. Texts that are filled in two
//! stages (an offer gets its city and location when the case opens and its
//! code and minutes when it is sent) use [`partial`]: it leaves the
//! placeholders it has no value for, and escapes braces in the values it
//! inserts (`{{`), which the final [`render`] turns back into one brace
//! without reading them as placeholders.

/// A value for each placeholder name.
pub type Values<'a> = &'a [(&'a str, &'a str)];

fn lookup<'a>(values: Values<'a>, name: &str) -> Option<&'a str> {
    values.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        if c == '{' {
            out.push_str("{{");
        } else {
            out.push(c);
        }
    }
}

/// Walk `template`, calling `on_name` for each `{name}` and copying the
/// rest. `{{` is an escaped brace: kept as `{{` when `keep_escapes`, else
/// written as `{`.
fn walk(template: &str, keep_escapes: bool, mut on_name: impl FnMut(&mut String, &str)) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('{') {
            out.push_str(if keep_escapes { "{{" } else { "{" });
            rest = tail;
            continue;
        }
        match after.find('}') {
            Some(end) if is_name(&after[..end]) => {
                on_name(&mut out, &after[..end]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Fill every placeholder that has a value and drop the escaping of
/// earlier stages. A placeholder without a value is left as it is.
pub fn render(template: &str, values: Values<'_>) -> String {
    walk(template, false, |out, name| match lookup(values, name) {
        Some(v) => out.push_str(v),
        None => {
            out.push('{');
            out.push_str(name);
            out.push('}');
        }
    })
}

/// Fill the placeholders that have a value and keep the others for a later
/// [`render`]; braces inside the inserted values are escaped so that the
/// later stage never expands them.
pub fn partial(template: &str, values: Values<'_>) -> String {
    walk(template, true, |out, name| match lookup(values, name) {
        Some(v) => escape_into(out, v),
        None => {
            out.push('{');
            out.push_str(name);
            out.push('}');
        }
    })
}

/// The placeholder names a template uses, in order (with repeats).
pub fn names(template: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(template, true, |_, name| found.push(name.to_owned()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_every_placeholder_once_and_keeps_unknown_ones() {
        assert_eq!(
            render(
                "{code} {code} {city} {x}",
                &[("code", "1234"), ("city", "Ош")]
            ),
            "1234 1234 Ош {x}"
        );
        assert_eq!(render("{ not a name } {}", &[]), "{ not a name } {}");
        assert_eq!(render("tail {", &[]), "tail {");
    }

    #[test]
    fn a_typed_placeholder_is_never_expanded_in_a_later_stage() {
        let stage1 = partial(
            "{code}: {location}, {minutes} min",
            &[("location", "ул. {code} {minutes}")],
        );
        let sent = render(&stage1, &[("code", "4821"), ("minutes", "3")]);
        assert_eq!(sent, "4821: ул. {code} {minutes}, 3 min");
    }

    #[test]
    fn names_lists_placeholders() {
        assert_eq!(names("{a} {{b} {c}"), vec!["a", "c"]);
    }

    proptest! {
        #[test]
        fn values_come_out_verbatim(value in ".{0,40}", tpl in "[a-z {}]{0,30}") {
            let t = format!("{tpl}<{{v}}>");
            let staged = render(&partial(&t, &[("v", &value)]), &[("code", "1")]);
            let expected = format!("<{value}>");
            prop_assert!(staged.ends_with(&expected), "{staged:?}");
        }
    }
}
