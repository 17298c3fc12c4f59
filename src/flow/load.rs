//! Loading flow files: a folder of `*.toml` files, or one file's text,
//! parsed and then validated (see [`super::check`]). Keywords and ids must be
//! unique across the folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::check::validate;
use super::model::FlowFile;
use super::{Fallbacks, Flow, FlowSet, ScreenCache};
use crate::problem::{Problem, quoted};

/// Load every `*.toml` in `dir`. Returns the flows that loaded (possibly
/// none) and every problem found; errors mean the set must not be served.
pub fn load_dir(
    dir: &Path,
    display_dir: &str,
    fallback: impl Into<Fallbacks>,
) -> (FlowSet, Vec<Problem>) {
    let fallback: Fallbacks = fallback.into();
    let mut problems = Vec::new();
    let mut set = FlowSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem::error(
                display_dir,
                "",
                format!("cannot read folder: {e}"),
            ));
            return (set, problems);
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        problems.push(Problem::error(
            display_dir,
            "",
            "no flow files (*.toml) found",
        ));
    }
    let mut keywords: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let display = format!("{}/{name}", display_dir.trim_end_matches('/'));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::error(&display, "", format!("cannot read: {e}")));
                continue;
            }
        };
        match parse(&text, &display, &fallback) {
            Ok((flow, mut found)) => {
                problems.append(&mut found);
                for k in &flow.spec.keywords {
                    let upper = k.to_uppercase();
                    if let Some(other) = keywords.insert(upper, flow.id().to_owned()) {
                        problems.push(Problem::error(
                            &display,
                            quoted("keywords", k),
                            format!("keyword already starts flow {other:?}"),
                        ));
                    }
                }
                if set.flows.contains_key(flow.id()) {
                    problems.push(Problem::error(
                        &display,
                        quoted("id", flow.id()),
                        "another flow file has the same id",
                    ));
                } else if !problems.iter().any(|p| p.is_error() && p.file == display) {
                    set.flows.insert(flow.id().to_owned(), Arc::new(flow));
                }
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    (set, problems)
}

/// Parse and validate one flow file. `Err` holds at least one error.
///
/// # Errors
/// The problems when the file is not valid TOML or not a valid flow.
pub fn parse(
    text: &str,
    display: &str,
    fallback: impl Into<Fallbacks>,
) -> Result<(Flow, Vec<Problem>), Vec<Problem>> {
    let spec: FlowFile = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        let key = match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}")
            }
            None => String::new(),
        };
        vec![Problem::error(display, key, msg)]
    })?;
    let flow = Flow {
        source: display.to_owned(),
        spec,
        fallback: fallback.into(),
        version: version_of(text),
        screens: ScreenCache::default(),
    };
    let problems = validate(&flow);
    if problems.iter().any(Problem::is_error) {
        Err(problems)
    } else {
        Ok((flow, problems))
    }
}

/// The version of a flow file's text: 16 hex digits of its SHA-256.
pub fn version_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
