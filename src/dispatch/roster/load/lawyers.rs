//! Lawyers and their phone numbers: from environment variables or the
//! phones file. No number ever reaches a problem; the phones file's own
//! syntax errors are reported by line only.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{LANGUAGES, Loader, RawLawyer, RawRoster, id_ok};
use crate::config::Env;
use crate::dispatch::roster::{Lawyer, LawyerId};
use crate::phone::PhoneNumber;
use crate::problem::{Problem, quoted};

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A number as a lawyer's phone: international form only (a national form
/// such as `0555…` would silently become a wrong E.164 number).
fn lawyer_phone(raw: &str) -> Result<PhoneNumber, String> {
    if !raw.trim_start().starts_with('+') {
        return Err("must start with + and the country code".into());
    }
    PhoneNumber::parse_international(raw).map_err(|e| e.to_string())
}

/// The phones file, as lawyer id → number text (already checked to be strings).
struct PhonesFile {
    display: String,
    numbers: BTreeMap<String, String>,
}

fn phones_file(l: &mut Loader<'_>, name: &str, base: &Path) -> Option<PhonesFile> {
    let path = base.join(name);
    let display = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            l.error(
                quoted("phones_file", name),
                format!("cannot read {display}: {e}"),
            );
            return None;
        }
    };
    // The toml crate's messages can quote what they failed on: report only
    // the line, never the text (it holds phone numbers).
    let table: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map_or(0, |s| {
                text.get(..s.start.min(text.len()))
                    .map_or(0, |t| t.matches('\n').count())
            }) + 1;
            l.problems.push(Problem::error(
                &display,
                format!("line {line}"),
                "not valid TOML: write one lawyer a line, like  aida = \"+996 …\"",
            ));
            return None;
        }
    };
    let mut numbers = BTreeMap::new();
    for (id, v) in table {
        match v {
            toml::Value::String(s) => {
                numbers.insert(id, s);
            }
            _ => l.problems.push(Problem::error(
                &display,
                id,
                "must be a quoted number in international form, like \"+996 …\"",
            )),
        }
    }
    // A file of numbers no phone answers (a demo roster's, committed on
    // purpose) needs no protection.
    let fictional = numbers
        .values()
        .all(|n| PhoneNumber::parse_international(n).is_ok_and(|p| p.is_fictional()));
    if !fictional {
        warn_if_readable(l, name, &path, &display);
    }
    Some(PhonesFile { display, numbers })
}

/// A warning when other accounts can read the phones file.
fn warn_if_readable(l: &mut Loader<'_>, name: &str, path: &Path, display: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            l.warning(
                quoted("phones_file", name),
                format!(
                    "{display} can be read by other accounts: chmod 600 it (it holds lawyers' numbers)"
                ),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (l, name, path, display);
}

pub(super) fn lawyers(
    l: &mut Loader<'_>,
    raw: &RawRoster,
    base: &Path,
    env: &dyn Env,
) -> BTreeMap<LawyerId, Lawyer> {
    let phones = raw
        .phones_file
        .as_deref()
        .and_then(|name| phones_file(l, name, base));
    let phones_unreadable = raw.phones_file.is_some() && phones.is_none();
    if raw.lawyers.is_empty() {
        l.error("lawyers", "no lawyers: add a [lawyers.ID] table for each");
    }
    let mut out = BTreeMap::new();
    let mut numbers: HashMap<PhoneNumber, String> = HashMap::new();
    for (id, x) in &raw.lawyers {
        let key = format!("lawyers.{id}");
        let name = check_lawyer(l, raw, id, x);
        let phone = if let Some(var) = &x.phone_env {
            number_from_env(l, &key, var, env)
        } else if let Some(p) = &phones {
            number_from_file(l, &key, id, p)
        } else {
            if !phones_unreadable {
                l.error(
                    key.clone(),
                    "no number: set phone_env, or phones_file at the top of the roster",
                );
            } // else reported once, above
            None
        };
        let Some(phone) = phone else { continue };
        if let Some(other) = numbers.insert(phone.clone(), id.clone()) {
            l.error(
                key.clone(),
                format!(
                    "has the same number as lawyers.{other}: replies are matched to a lawyer by number"
                ),
            );
        }
        out.insert(
            LawyerId(id.clone()),
            Lawyer {
                id: LawyerId(id.clone()),
                name,
                phone,
                languages: x.languages.clone(),
                cities: x.cities.clone(),
            },
        );
    }
    if let Some(p) = &phones {
        numbers_without_lawyer(l, raw, p);
    }
    out
}

/// Check a lawyer's id, name, languages and cities; returns her name.
fn check_lawyer(l: &mut Loader<'_>, raw: &RawRoster, id: &str, x: &RawLawyer) -> String {
    let key = format!("lawyers.{id}");
    if !id_ok(id) {
        l.error(
            key.clone(),
            "an id uses lowercase letters, digits, `_` or `-`",
        );
    }
    let name = x.name.clone().unwrap_or_default();
    if name.trim().is_empty() {
        l.error(
            format!("{key}.name"),
            "missing: the name people know her by",
        );
    }
    if x.languages.is_empty() {
        l.error(
            format!("{key}.languages"),
            "list the languages she speaks, like [\"ru\", \"ky\"]",
        );
    }
    for (i, lang) in x.languages.iter().enumerate() {
        if !LANGUAGES.contains(&lang.as_str()) {
            l.error(
                quoted(&format!("{key}.languages[{i}]"), lang),
                format!("unknown language (known: {})", LANGUAGES.join(", ")),
            );
        }
    }
    for (i, city) in x.cities.iter().enumerate() {
        if !raw.cities.contains_key(city) {
            l.error(
                quoted(&format!("{key}.cities[{i}]"), city),
                "no such city in [cities]",
            );
        }
    }
    name
}

/// A lawyer's number from the environment variable `var` (`key` is
/// `lawyers.ID`). Problems name the variable, never its value.
fn number_from_env(l: &mut Loader<'_>, key: &str, var: &str, env: &dyn Env) -> Option<PhoneNumber> {
    let var_key = quoted(&format!("{key}.phone_env"), var);
    if !env_name_ok(var) {
        l.error(
            var_key,
            "not an environment variable name (capitals, digits and _)",
        );
        return None;
    }
    let Some(v) = env.var(var) else {
        l.error(var_key, format!("environment variable {var} is not set"));
        return None;
    };
    lawyer_phone(&v)
        .map_err(|why| {
            l.error(
                var_key,
                format!("{var} does not hold a number in international form: {why}"),
            );
        })
        .ok()
}

/// A lawyer's number from the phones file (`key` is `lawyers.ID`).
/// Problems with the number itself name the phones file and the id only.
fn number_from_file(
    l: &mut Loader<'_>,
    key: &str,
    id: &str,
    p: &PhonesFile,
) -> Option<PhoneNumber> {
    let Some(v) = p.numbers.get(id) else {
        l.error(
            key,
            format!(
                "no number: add `{id} = \"+…\"` to {}, or set phone_env",
                p.display
            ),
        );
        return None;
    };
    lawyer_phone(v)
        .map_err(|why| {
            l.problems.push(Problem::error(
                &p.display,
                id,
                format!("not a number in international form: {why}"),
            ));
        })
        .ok()
}

/// Warn about numbers in the phones file for ids the roster does not have.
fn numbers_without_lawyer(l: &mut Loader<'_>, raw: &RawRoster, p: &PhonesFile) {
    for id in p.numbers.keys() {
        if !raw.lawyers.contains_key(id) {
            l.problems.push(Problem::warning(
                &p.display,
                id.clone(),
                format!("no lawyer with this id in {}", l.file),
            ));
        }
    }
}
