//! `hotline texts export` and `hotline texts import`: every text a woman or
//! a lawyer reads, as CSV for translators, and back into the TOML files.
//!
//! A row is one string in one file: `file` (as `hotline check` names it),
//! `key_path` (`nodes.city.options[1].label.ky`, `messages.confirm.uk`,
//! `ky.offer`), `node` (the node, `messages`, or the lawyer text's name),
//! `language` (`*` for a string shared by every language), `kind`
//! (`ussd` a screen, `sms` a message she receives, `lawyer` a lawyer's
//! text), `limit` and `length` (in the units of `encoding`: GSM-7 septets or
//! UCS-2 characters), `encoding` and `text`.
//!
//! Limits follow `hotline check`: a screen's text may take what the USSD
//! screen limit leaves after the rest of its worst screen (every caller
//! country, first showing and re-prompt); `messages.invalid` one screen on
//! its own; an SMS she receives or a lawyer's text two SMS parts, measured
//! with the values `check` measures with (an offer's location is not
//! counted: it is cut to fit).
//!
//! Import checks every row before writing anything: a file or key the
//! export does not have, a text over its limit or with other placeholders
//! than the current text is an error naming the row; then the changed
//! files are validated as `hotline check` validates them (in a scratch
//! copy), and only a result with no new errors is written, with comments
//! and layout kept (`toml_edit`). `--dry-run` prints what would change.
//!
//! Exit codes: 0 exported or imported (or nothing to change), 1 rows or the
//! result rejected (nothing written), 64 a bad config, argument or CSV file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use toml_edit::{DocumentMut, Item, Table, Value};

use super::error::fail;
use super::{CliError, load_config, print_problems};
use crate::config::{Config, ProcessEnv};
use crate::flow::{Flow, lint};
use crate::problem::Problem;
use crate::template::render;
use crate::text::{Encoding, USSD_GSM7_LIMIT, USSD_UCS2_LIMIT, measure};

/// The CSV header, in column order.
pub const HEADER: [&str; 9] = [
    "file", "key_path", "node", "language", "kind", "limit", "length", "encoding", "text",
];

/// Two SMS parts, in each encoding's units.
fn two_parts(e: Encoding) -> usize {
    match e {
        Encoding::Gsm7 => 2 * 153,
        Encoding::Ucs2 => 2 * 67,
    }
}

fn ussd(e: Encoding) -> usize {
    match e {
        Encoding::Gsm7 => USSD_GSM7_LIMIT,
        Encoding::Ucs2 => USSD_UCS2_LIMIT,
    }
}

/// One place a text is measured: what surrounds it (`rest`, in units;
/// negative when placeholders render shorter than written), the encoding
/// the surroundings force, and the limit of the whole.
#[derive(Debug, Clone, Copy)]
struct Budget {
    rest: isize,
    base: Encoding,
    cap: fn(Encoding) -> usize,
}

impl Budget {
    /// `(limit, length)` for `text` here.
    fn measure(&self, text: &str) -> (usize, usize, Encoding) {
        let enc = if self.base == Encoding::Gsm7 && measure(text).encoding == Encoding::Gsm7 {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        };
        let len = units_in(text, enc);
        let limit = (self.cap)(enc).saturating_add_signed(-self.rest);
        (limit, len, enc)
    }
}

/// Length of `text` in `enc`'s units.
fn units_in(text: &str, enc: Encoding) -> usize {
    match enc {
        Encoding::Gsm7 => measure(text).units,
        Encoding::Ucs2 => text.encode_utf16().count(),
    }
}

/// The worst of `budgets` for `text`: `(limit, length, encoding)`, least
/// room first.
fn worst(budgets: &[Budget], text: &str) -> (usize, usize, Encoding) {
    budgets
        .iter()
        .map(|b| b.measure(text))
        .min_by_key(|(limit, len, _)| {
            i64::try_from(*limit).unwrap_or(i64::MAX) - i64::try_from(*len).unwrap_or(0)
        })
        .unwrap_or_else(|| {
            let m = measure(text);
            (ussd(m.encoding), m.units, m.encoding)
        })
}

/// A step into a TOML document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Every string in a document, with its path.
fn strings(doc: &DocumentMut) -> Vec<(Vec<Seg>, String)> {
    let mut out = Vec::new();
    table_strings(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

fn table_strings(t: &Table, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, String)>) {
    for (k, item) in t {
        path.push(Seg::Key(k.to_owned()));
        item_strings(item, path, out);
        path.pop();
    }
}

fn item_strings(item: &Item, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, String)>) {
    match item {
        Item::Value(v) => value_strings(v, path, out),
        Item::Table(t) => table_strings(t, path, out),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                table_strings(t, path, out);
                path.pop();
            }
        }
        Item::None => {}
    }
}

fn value_strings(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, String)>) {
    match v {
        Value::String(s) => out.push((path.clone(), s.value().clone())),
        Value::InlineTable(t) => {
            for (k, v) in t {
                path.push(Seg::Key(k.to_owned()));
                value_strings(v, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                value_strings(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn item_value_mut<'a>(item: &'a mut Item, segs: &[Seg]) -> Option<&'a mut Value> {
    match item {
        Item::Value(v) => value_mut(v, segs),
        Item::Table(t) => match segs.first()? {
            Seg::Key(k) => item_value_mut(t.get_mut(k)?, &segs[1..]),
            Seg::Index(_) => None,
        },
        Item::ArrayOfTables(a) => match (segs.first()?, segs.get(1)?) {
            (Seg::Index(i), Seg::Key(k)) => item_value_mut(a.get_mut(*i)?.get_mut(k)?, &segs[2..]),
            _ => None,
        },
        Item::None => None,
    }
}

fn value_mut<'a>(v: &'a mut Value, segs: &[Seg]) -> Option<&'a mut Value> {
    let Some(first) = segs.first() else {
        return Some(v);
    };
    match (v, first) {
        (Value::InlineTable(t), Seg::Key(k)) => value_mut(t.get_mut(k)?, &segs[1..]),
        (Value::Array(a), Seg::Index(i)) => value_mut(a.get_mut(*i)?, &segs[1..]),
        _ => None,
    }
}

/// Replace the string at `segs`, keeping its surrounding whitespace and
/// comments.
fn set_string(doc: &mut DocumentMut, segs: &[Seg], text: &str) -> bool {
    let Some(v) = item_value_mut(doc.as_item_mut(), segs) else {
        return false;
    };
    if !v.is_str() {
        return false;
    }
    let decor = v.decor().clone();
    *v = Value::from(text);
    *v.decor_mut() = decor;
    true
}

/// What kind of text a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ussd,
    Sms,
    Lawyer,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Ussd => "ussd",
            Kind::Sms => "sms",
            Kind::Lawyer => "lawyer",
        }
    }
}

/// One text, where it lives and how it is measured.
#[derive(Debug, Clone)]
struct Row {
    file: String,
    segs: Vec<Seg>,
    key_path: String,
    node: String,
    language: String,
    kind: Kind,
    budgets: Vec<Budget>,
    text: String,
}

/// A TOML file with texts in it.
struct TextFile {
    display: String,
    path: PathBuf,
    source: String,
    rows: Vec<Row>,
}

fn key(segs: &[Seg], i: usize) -> Option<&str> {
    match segs.get(i)? {
        Seg::Key(k) => Some(k),
        Seg::Index(_) => None,
    }
}

/// Every flow text in a flow file, measured against the loaded flow.
fn flow_rows(display: &str, doc: &DocumentMut, flow: &Flow) -> Vec<Row> {
    let screens = lint::screens(flow);
    let langs = &flow.spec.languages;
    let mut out = Vec::new();
    for (segs, text) in strings(doc) {
        let lang_at = |i: usize| -> Option<String> {
            match segs.len() {
                n if n == i => Some("*".to_owned()),
                n if n == i + 1 => key(&segs, i)
                    .filter(|l| langs.iter().any(|x| x == l))
                    .map(str::to_owned),
                _ => None,
            }
        };
        let (node, screen_key, language, kind) = match (key(&segs, 0), key(&segs, 1), key(&segs, 2))
        {
            (Some("messages"), Some(m), _) => {
                let Some(lang) = lang_at(2) else { continue };
                let kind = if matches!(m, "confirm" | "unanswered" | "sms_help") {
                    Kind::Sms
                } else {
                    Kind::Ussd
                };
                ("messages".to_owned(), format!("messages.{m}"), lang, kind)
            }
            (Some("nodes"), Some(id), Some(field)) => {
                let lang = match (field, segs.get(3), key(&segs, 4), key(&segs, 3)) {
                    ("text", ..) => lang_at(3),
                    ("options", Some(Seg::Index(_)), Some("label"), _) => lang_at(5),
                    ("skip", _, _, Some("label")) => lang_at(4),
                    _ => None,
                };
                let Some(lang) = lang else { continue };
                (id.to_owned(), format!("nodes.{id}"), lang, Kind::Ussd)
            }
            _ => continue,
        };
        let budgets = flow_budgets(flow, &screens, &screen_key, &language, kind, &text);
        out.push(Row {
            file: display.to_owned(),
            key_path: path_string(&segs),
            segs,
            node,
            language,
            kind,
            budgets,
            text,
        });
    }
    out
}

fn flow_budgets(
    flow: &Flow,
    screens: &[lint::Screen],
    screen_key: &str,
    lang: &str,
    kind: Kind,
    text: &str,
) -> Vec<Budget> {
    let raw = measure(text);
    if screen_key == "messages.invalid" {
        // Shown above a re-prompt, or alone when the two would not fit.
        return vec![Budget {
            rest: 0,
            base: raw.encoding,
            cap: ussd,
        }];
    }
    if kind == Kind::Sms {
        let keywords = flow.spec.keywords.join(", ");
        let mut out = Vec::new();
        for country in lint::countries_in(flow) {
            let fallback = flow.fallback.for_country(country);
            let with = crate::template::partial(text, &[("fallback", fallback)]);
            let shown = render(&with, &[("code", "0000"), ("keywords", &keywords)]);
            let m = measure(&shown);
            out.push(Budget {
                rest: signed(m.units) - signed(units_in(text, m.encoding)),
                base: m.encoding,
                cap: two_parts,
            });
        }
        return out;
    }
    let whole = screen_key.starts_with("messages.") || text.contains('{');
    let shown = render(text, &[("code", "0000")]);
    screens
        .iter()
        .filter(|s| s.key == screen_key && (lang == "*" || s.lang == lang))
        .filter(|s| whole || s.text.contains(&shown))
        .map(|s| Budget {
            rest: signed(s.measure.units) - signed(units_in(text, s.measure.encoding)),
            base: s.measure.encoding,
            cap: ussd,
        })
        .collect()
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// The values a lawyer's text is measured with (as `hotline check
/// --screens`); the location is left out: an offer cuts it to fit.
const LAWYER_SAMPLE: &[(&str, &str)] = &[
    ("code", "0000"),
    ("city", "Bishkek"),
    ("situation", "detained"),
    ("abuse", ""),
    ("location", ""),
    ("callback", "+996555000000"),
    ("callback_note", " (her phone)"),
    ("language", "ru"),
    ("minutes", "45"),
    ("name", "Aigul"),
    ("list", "0000, 0001"),
    ("count", "2"),
    ("until", "18:00"),
];

fn lawyer_rows(display: &str, doc: &DocumentMut) -> Vec<Row> {
    // `help` and `outcome_bad` are sent with the language's real outcome
    // codes, and an outcome's label inside `closed`: measure them so.
    let parsed = crate::dispatch::texts::LawyerTexts::parse(&doc.to_string(), display).ok();
    let mut out = Vec::new();
    let all = strings(doc);
    let closed_of = |lang: &str| {
        all.iter()
            .find(|(segs, _)| {
                segs.len() == 2 && key(segs, 0) == Some(lang) && key(segs, 1) == Some("closed")
            })
            .map(|(_, t)| t.clone())
    };
    for (segs, text) in &all {
        let (Some(lang), Some(name)) = (key(segs, 0), key(segs, 1)) else {
            continue;
        };
        let label = segs.len() == 4 && name == "outcomes" && key(segs, 3) == Some("label");
        if !label && (segs.len() > 3 || (segs.len() == 3 && key(segs, 2).is_none())) {
            continue;
        }
        let codes = parsed.as_ref().map(|p| {
            p.for_langs(std::slice::from_ref(&lang.to_owned()))
                .outcome_codes()
        });
        let mut sample: Vec<(&str, &str)> = LAWYER_SAMPLE.to_vec();
        if let (Some(codes), "help" | "outcome_bad") = (&codes, name) {
            sample.retain(|(k, _)| *k != "list");
            sample.push(("list", codes));
        }
        // A label is measured inside its language's `closed` message.
        let (shown, own, node) = if label {
            let closed = closed_of(lang).unwrap_or_else(|| "{list}".into());
            let whole = render(&closed, &[("list", text), ("code", "0000")]);
            let node = format!("outcomes.{}", key(segs, 2).unwrap_or_default());
            (whole, text.clone(), node)
        } else {
            (render(text, &sample), text.clone(), name.to_owned())
        };
        let m = measure(&shown);
        out.push(Row {
            file: display.to_owned(),
            key_path: path_string(segs),
            node,
            language: lang.to_owned(),
            kind: Kind::Lawyer,
            budgets: vec![Budget {
                rest: signed(m.units) - signed(units_in(&own, m.encoding)),
                base: m.encoding,
                cap: two_parts,
            }],
            segs: segs.clone(),
            text: own,
        });
    }
    out
}

/// Every file with texts the config names: its flows, then the lawyers'
/// texts when dispatch is configured.
fn text_files(config: &Config) -> Result<Vec<TextFile>, CliError> {
    let (flows, problems) = crate::app::load_flows(config);
    let mut files = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&config.flows.dir)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", config.flows.display_dir)))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let display = format!("{}/{name}", config.flows.display_dir.trim_end_matches('/'));
        let Some(flow) = flows.flows.values().find(|f| f.source == display) else {
            let mine: Vec<Problem> = problems
                .iter()
                .filter(|p| p.to_string().contains(&display))
                .cloned()
                .collect();
            return Err(CliError::Build(if mine.is_empty() {
                vec![Problem::error(
                    &display,
                    "",
                    "the flow does not load: run hotline check",
                )]
            } else {
                mine
            }));
        };
        let source = read(&path, &display)?;
        let doc = parse(&source, &display)?;
        files.push(TextFile {
            rows: flow_rows(&display, &doc, flow),
            display,
            path,
            source,
        });
    }
    if let Some(d) = &config.dispatch {
        let source = read(&d.texts, &d.texts_display)?;
        let doc = parse(&source, &d.texts_display)?;
        files.push(TextFile {
            rows: lawyer_rows(&d.texts_display, &doc),
            display: d.texts_display.clone(),
            path: d.texts.clone(),
            source,
        });
    }
    Ok(files)
}

fn read(path: &Path, display: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {display}: {e}")))
}

fn parse(source: &str, display: &str) -> Result<DocumentMut, CliError> {
    source
        .parse::<DocumentMut>()
        .map_err(|e| CliError::Build(vec![Problem::error(display, "", e.to_string())]))
}

// ---------------------------------------------------------------- CSV

/// Quote a field as RFC 4180 asks: in double quotes (doubled inside) when
/// it holds a comma, a quote, a line break, or space at either end.
fn csv_field(out: &mut String, field: &str) {
    let quote = field.contains([',', '"', '\n', '\r'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace);
    if quote {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// Records to CSV text, CRLF line ends (RFC 4180).
pub fn to_csv<S: AsRef<str>>(records: &[Vec<S>]) -> String {
    let mut out = String::new();
    for r in records {
        for (i, f) in r.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f.as_ref());
        }
        out.push_str("\r\n");
    }
    out
}

/// Parse CSV text (RFC 4180; LF or CRLF line ends, a UTF-8 byte-order mark
/// ignored) into records. The separator is a comma, or a semicolon or tab
/// when the first line has one and no comma (a spreadsheet set to a
/// Russian or Ukrainian locale saves "CSV" with semicolons).
///
/// # Errors
/// The line where a quoted field is malformed or never closed.
pub fn from_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or("");
    let sep = if first.contains(',') {
        ','
    } else if first.contains(';') {
        ';'
    } else if first.contains('\t') {
        '\t'
    } else {
        ','
    };
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut quoted_from = None;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if let Some(from) = quoted_from {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted_from = None;
                    match chars.peek() {
                        Some(c) if *c == sep || *c == '\n' || *c == '\r' => {}
                        None => {}
                        Some(_) => {
                            return Err(format!(
                                "line {line}: text after the closing quote of a field opened on line {from}"
                            ));
                        }
                    }
                }
            } else {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted_from = Some(line);
                at_start = false;
            }
            '"' => return Err(format!("line {line}: a quote inside an unquoted field")),
            c if c == sep => {
                record.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                line += 1;
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if let Some(from) = quoted_from {
        return Err(format!("line {from}: a quoted field is never closed"));
    }
    if !at_start || !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

// ------------------------------------------------------------- commands

/// `hotline texts export`.
pub(super) fn export(flag: Option<PathBuf>, format: &str, output: Option<PathBuf>) -> ExitCode {
    match export_text(flag, format) {
        Ok(csv) => {
            let written = match &output {
                Some(path) => std::fs::write(path, csv.as_bytes()),
                None => std::io::stdout().write_all(csv.as_bytes()),
            };
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&CliError::Usage(format!("cannot write the CSV: {e}"))),
            }
        }
        Err(e) => fail(&e),
    }
}

fn export_text(flag: Option<PathBuf>, format: &str) -> Result<String, CliError> {
    if format != "csv" {
        return Err(CliError::Usage(format!(
            "--format {format:?}: only csv is supported"
        )));
    }
    let (config, _) = load_config(flag.as_deref(), &ProcessEnv)?;
    let files = text_files(&config)?;
    let mut records: Vec<Vec<String>> = vec![HEADER.iter().map(|h| (*h).to_owned()).collect()];
    for f in &files {
        for r in &f.rows {
            let (limit, length, enc) = worst(&r.budgets, &r.text);
            records.push(vec![
                r.file.clone(),
                r.key_path.clone(),
                r.node.clone(),
                r.language.clone(),
                r.kind.as_str().to_owned(),
                limit.to_string(),
                length.to_string(),
                enc.to_string(),
                r.text.clone(),
            ]);
        }
    }
    Ok(to_csv(&records))
}

/// The `{name}` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && end > 0 =>
            {
                out.insert(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// A change a row asks for.
#[derive(Debug)]
struct Change {
    row: usize,
    file: usize,
    key_path: String,
    old: String,
    new: String,
}

/// The columns `file`, `key_path` and `text` of the header (row 1).
///
/// # Errors
/// A message when the CSV is empty or its header lacks one of them: not a
/// rejected row but a file that is not an export at all, a bad input file
/// like one that is not CSV (exit 64, as the README says).
fn columns(records: &[Vec<String>]) -> Result<(usize, usize, usize), String> {
    let Some(header) = records.first() else {
        return Err(
            "the CSV is empty (export one with hotline texts export --format csv)".to_owned(),
        );
    };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    match (col("file"), col("key_path"), col("text")) {
        (Some(f), Some(k), Some(t)) => Ok((f, k, t)),
        _ => Err(
            "row 1: the header needs the columns file, key_path and text (export a CSV with hotline texts export --format csv)"
                .to_owned(),
        ),
    }
}

/// Check every row of `records` after the header against `files`; the
/// changes, or every row's problem.
fn plan(
    files: &[TextFile],
    records: &[Vec<String>],
    (c_file, c_key, c_text): (usize, usize, usize),
) -> Result<Vec<Change>, Vec<String>> {
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    let mut seen: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for (i, rec) in records.iter().enumerate().skip(1) {
        let n = i + 1;
        if rec.iter().all(String::is_empty) {
            continue;
        }
        let get = |c: usize| rec.get(c).map_or("", String::as_str);
        let (file, key_path, text) = (get(c_file), get(c_key), get(c_text));
        let Some(fi) = files.iter().position(|f| f.display == file) else {
            errors.push(format!(
                "row {n}: no file {file:?} (files: {})",
                files
                    .iter()
                    .map(|f| f.display.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        let Some(row) = files[fi].rows.iter().find(|r| r.key_path == key_path) else {
            errors.push(format!("row {n}: {file} has no text at {key_path:?}"));
            continue;
        };
        if let Some(first) = seen.insert((fi, key_path.to_owned()), n) {
            errors.push(format!("row {n}: {file} {key_path} is also on row {first}"));
            continue;
        }
        if text == row.text {
            continue;
        }
        if text.trim().is_empty() {
            errors.push(format!("row {n}: {file} {key_path}: the text is empty"));
            continue;
        }
        let (want, got) = (placeholders(&row.text), placeholders(text));
        if want != got {
            let missing: Vec<String> = want.difference(&got).map(|p| format!("{{{p}}}")).collect();
            let extra: Vec<String> = got.difference(&want).map(|p| format!("{{{p}}}")).collect();
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!("missing {}", missing.join(" ")));
            }
            if !extra.is_empty() {
                why.push(format!("unknown here {}", extra.join(" ")));
            }
            errors.push(format!(
                "row {n}: {file} {key_path}: placeholders must stay as in the current text ({})",
                why.join("; ")
            ));
            continue;
        }
        let (limit, length, enc) = worst(&row.budgets, text);
        if length > limit {
            errors.push(format!(
                "row {n}: {file} {key_path}: {length} characters in {enc}, over its limit of {limit} ({})",
                match row.kind {
                    Kind::Ussd => "the USSD screen limit, after the rest of the screen",
                    Kind::Sms | Kind::Lawyer => "two SMS parts",
                }
            ));
            continue;
        }
        changes.push(Change {
            row: n,
            file: fi,
            key_path: key_path.to_owned(),
            old: row.text.clone(),
            new: text.to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

/// The new text of each changed file.
fn apply(files: &[TextFile], changes: &[Change]) -> Result<BTreeMap<usize, String>, CliError> {
    let mut docs: BTreeMap<usize, DocumentMut> = BTreeMap::new();
    for c in changes {
        let f = &files[c.file];
        let doc = match docs.entry(c.file) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(parse(&f.source, &f.display)?)
            }
        };
        let row = f.rows.iter().find(|r| r.key_path == c.key_path);
        if !row.is_some_and(|r| set_string(doc, &r.segs, &c.new)) {
            return Err(CliError::Usage(format!(
                "row {}: {} {} could not be set",
                c.row, f.display, c.key_path
            )));
        }
    }
    Ok(docs.into_iter().map(|(i, d)| (i, d.to_string())).collect())
}

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The errors `hotline check` finds in `config` with `new` in place of the
/// files it names, that it does not find without them.
fn new_errors(
    config: &Config,
    files: &[TextFile],
    new: &BTreeMap<usize, String>,
) -> Result<Vec<Problem>, CliError> {
    let before: BTreeSet<String> = super::check::problems(config, &ProcessEnv)
        .iter()
        .filter(|p| p.is_error())
        .map(ToString::to_string)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch =
        Scratch(std::env::temp_dir().join(format!("hotline-texts-{}-{nanos}", std::process::id())));
    let flows_dir = scratch.0.join("flows");
    let io = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot prepare the check in {}: {e}",
            scratch.0.display()
        ))
    };
    std::fs::create_dir_all(&flows_dir).map_err(io)?;
    for entry in std::fs::read_dir(&config.flows.dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|x| x == "toml")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, flows_dir.join(name)).map_err(io)?;
        }
    }
    let mut changed = config.clone();
    changed.flows.dir.clone_from(&flows_dir);
    for (i, text) in new {
        let f = &files[*i];
        let target = if f.path.parent() == Some(config.flows.dir.as_path())
            || f.path.starts_with(&config.flows.dir)
        {
            flows_dir.join(f.path.file_name().unwrap_or_default())
        } else {
            let t = scratch.0.join("lawyer_texts.toml");
            if let Some(d) = &mut changed.dispatch {
                d.texts.clone_from(&t);
            }
            t
        };
        std::fs::write(&target, text).map_err(io)?;
    }
    Ok(super::check::problems(&changed, &ProcessEnv)
        .into_iter()
        .filter(|p| p.is_error() && !before.contains(&p.to_string()))
        .collect())
}

/// Write `text` to `path` through a file beside it, renamed into place.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".import");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `hotline texts import`.
pub(super) fn import(flag: Option<PathBuf>, csv: &Path, dry_run: bool) -> ExitCode {
    let config = match load_config(flag.as_deref(), &ProcessEnv) {
        Ok((c, _)) => c,
        Err(e) => return fail(&CliError::Config(e)),
    };
    let files = match text_files(&config) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let text = match std::fs::read(csv) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return fail(&CliError::Usage(format!(
                    "{}: not UTF-8 (save the spreadsheet as CSV UTF-8)",
                    csv.display()
                )));
            }
        },
        Err(e) => {
            return fail(&CliError::Usage(format!(
                "cannot read {}: {e}",
                csv.display()
            )));
        }
    };
    let records = match from_csv(&text) {
        Ok(r) => r,
        Err(e) => return fail(&CliError::Usage(format!("{}: {e}", csv.display()))),
    };
    let columns = match columns(&records) {
        Ok(c) => c,
        Err(e) => return fail(&CliError::Usage(format!("{}: {e}", csv.display()))),
    };
    let changes = match plan(&files, &records, columns) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} row(s) rejected: nothing written", errors.len());
            return ExitCode::from(1);
        }
    };
    for c in &changes {
        println!(
            "row {}: {} {}\n  - {:?}\n  + {:?}",
            c.row, files[c.file].display, c.key_path, c.old, c.new
        );
    }
    if changes.is_empty() {
        println!("no text changed: nothing to write");
        return ExitCode::SUCCESS;
    }
    let new = match apply(&files, &changes) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    match new_errors(&config, &files, &new) {
        Ok(errors) if errors.is_empty() => {}
        Ok(errors) => {
            print_problems(&errors);
            eprintln!(
                "the changed texts fail hotline check ({} new error(s)): nothing written",
                errors.len()
            );
            return ExitCode::from(1);
        }
        Err(e) => return fail(&e),
    }
    if dry_run {
        println!(
            "{} text(s) would change in {} file(s) (--dry-run: nothing written)",
            changes.len(),
            new.len()
        );
        return ExitCode::SUCCESS;
    }
    for (i, text) in &new {
        if let Err(e) = write_file(&files[*i].path, text) {
            return fail(&CliError::Usage(format!(
                "cannot write {}: {e}",
                files[*i].display
            )));
        }
    }
    println!(
        "{} text(s) changed in {}",
        changes.len(),
        new.keys()
            .map(|i| files[*i].display.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_commas_quotes_and_line_breaks() {
        let records = vec![
            vec!["a".to_owned(), "b, c".to_owned(), "say \"hi\"".to_owned()],
            vec!["line\none".to_owned(), String::new(), " padded ".to_owned()],
            vec!["Ош, Бишкек".to_owned(), "{code}".to_owned(), "x".to_owned()],
        ];
        let text = to_csv(&records);
        assert!(text.contains("\"b, c\",\"say \"\"hi\"\"\""), "{text}");
        assert_eq!(from_csv(&text).unwrap(), records);
        // LF line ends and a byte-order mark (spreadsheets write both).
        let lf = format!("\u{feff}{}", text.replace("\r\n", "\n"));
        assert_eq!(from_csv(&lf).unwrap(), records);
        // Semicolons, as a spreadsheet in a Russian locale saves them.
        let semi = "file;key_path;text\r\nf;k;\"a; b, c\"\r\n";
        assert_eq!(
            from_csv(semi).unwrap(),
            vec![vec!["file", "key_path", "text"], vec!["f", "k", "a; b, c"]]
        );
    }

    #[test]
    fn malformed_csv_is_an_error_naming_the_line() {
        assert!(from_csv("a,\"b\nc").unwrap_err().contains("line 1"));
        assert!(from_csv("a,b\"c\n").unwrap_err().contains("line 1"));
        assert!(from_csv("x\n\"a\"b,c\n").unwrap_err().contains("line 2"));
    }

    #[test]
    fn placeholders_are_the_braced_names() {
        let p = placeholders("{code} x {fallback} {} {not a name} {code}");
        assert_eq!(p.into_iter().collect::<Vec<_>>(), vec!["code", "fallback"]);
    }

    #[test]
    fn setting_a_string_keeps_comments_and_layout() {
        let src = "# top\n[a]\nx = { ru = \"один\", ky = \"бир\" } # tail\n\n[[a.o]]\nlabel = \"L\"  # c\n";
        let mut doc: DocumentMut = src.parse().unwrap();
        let all = strings(&doc);
        let paths: Vec<String> = all.iter().map(|(s, _)| path_string(s)).collect();
        assert_eq!(paths, vec!["a.x.ru", "a.x.ky", "a.o[0].label"]);
        assert!(set_string(&mut doc, &all[1].0, "эки, \"2\""));
        assert!(set_string(&mut doc, &all[2].0, "M"));
        assert_eq!(
            doc.to_string(),
            "# top\n[a]\nx = { ru = \"один\", ky = 'эки, \"2\"' } # tail\n\n[[a.o]]\nlabel = \"M\"  # c\n"
        );
    }
}
