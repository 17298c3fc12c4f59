//! `hotline check`: everything `serve` would load, without binding a port;
//! every screen measured. A deploy gate: exit 0 clean, 1 errors (`serve`
//! would refuse, or dispatch cannot send), 3 warnings only, 2 unreadable.
//! It says whether the configuration is a production or a development one
//! ([`Config::production`]); with `--screens` it also lists every SMS the
//! woman receives and every lawyer text, with parts and encoding.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::print_problems;
use crate::app::LoadedSet;
use crate::clock::Clock;
use crate::config::{Config, Env, LoadError, ProcessEnv, StoreKind};
use crate::deps::Deps;
use crate::dispatch::Dispatcher;
use crate::flow::{FlowSet, lint};
use crate::problem::Problem;

pub(super) fn check(flag: Option<PathBuf>, list_screens: bool) -> ExitCode {
    let env = ProcessEnv;
    let path = crate::config::config_path(flag.as_deref(), &env);
    let (config, mut problems) = match crate::config::load_with_errors(&path, &env) {
        Ok(x) => x,
        Err(e) => {
            print_problems(e.problems());
            return ExitCode::from(match e {
                LoadError::Unreadable(_) => 2,
                LoadError::Invalid(_) => 1,
            });
        }
    };
    if problems.iter().any(Problem::is_error) {
        // Every problem in one run: the flows, roster and texts the file
        // names are checked too, with what of it is valid (never served).
        for p in gather(&config, &env).problems {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        print_problems(&problems);
        return verdict(&problems);
    }
    let Gathered {
        flows,
        channels,
        dispatcher,
        problems: found,
    } = gather(&config, &env);
    problems.extend(found);
    if let Some(d) = &dispatcher {
        print_dispatch(d);
    }
    problems.extend(super::test_sms::print_unverified(
        &config,
        dispatcher.as_deref(),
    ));
    problems.extend(spool_dir_problem(&config));
    print_flows(&flows, list_screens);
    if list_screens {
        print_sms(&flows);
        if let Some(d) = &config.dispatch {
            print_lawyer_texts(&d.texts, &d.texts_display, &free_text_limits(&flows));
        }
    }
    println!(
        "{}: {} channel(s), store {}, {} flow(s)",
        config.source,
        channels,
        match config.store.kind {
            StoreKind::Memory => "memory",
            StoreKind::Redis(_) => "redis",
        },
        flows.flows.len()
    );
    match config.production() {
        Some(why) => println!("production configuration ({why})"),
        None => println!(
            "development configuration: demo values allowed, the console channel runs; not for real callers (a production one sets privacy.require_pii_key = true or gives a channel sending credentials)"
        ),
    }
    print_problems(&problems);
    verdict(&problems)
}

/// What `check` loads, and the problems found loading it.
struct Gathered {
    flows: Arc<FlowSet>,
    channels: usize,
    dispatcher: Option<Arc<Dispatcher>>,
    problems: Vec<Problem>,
}

fn gather(config: &Config, env: &dyn Env) -> Gathered {
    let (channels, mut problems) = crate::app::build_channels(config);
    // The same loading and checks as `serve` and a reload.
    let deps = Deps::detached(
        crate::privacy::Privacy::from_config(&config.privacy),
        Clock::manual(Clock::System.now_ms()),
    );
    let (LoadedSet { flows, dispatcher }, set_problems) =
        crate::app::load_set(config, &channels, deps, env);
    problems.extend(set_problems);
    Gathered {
        flows,
        channels: channels.len(),
        dispatcher,
        problems,
    }
}

/// Every problem `check` reports for `config` (after the config's own),
/// printing nothing: `hotline texts import` validates its result with it.
pub(super) fn problems(config: &Config, env: &dyn Env) -> Vec<Problem> {
    gather(config, env).problems
}

/// Whether `serve` could open its spool folder (`store.spool_dir`, used on
/// Redis only): an error when it cannot be made at all (a file where a
/// folder must be); a warning when this user could not make or write it
/// (the service's own user may: systemd's `StateDirectory=` makes
/// `/var/lib/hotline` for it). Writes nothing but a probe file it removes.
fn spool_dir_problem(config: &Config) -> Option<Problem> {
    if config.store.kind == StoreKind::Memory {
        return None;
    }
    let dir = &config.store.spool_dir;
    let key = format!("store.spool_dir = {:?}", dir.display().to_string());
    let mut existing = dir.as_path();
    while !existing.exists() {
        existing = existing.parent()?;
    }
    if !existing.is_dir() {
        return Some(Problem::error(
            &config.source,
            key,
            format!(
                "{} is not a folder, so the spool cannot be made under it: `serve` would refuse to start",
                existing.display()
            ),
        ));
    }
    let probe = existing.join(format!(".hotline-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(Problem::warning(
            &config.source,
            key,
            format!(
                "{} cannot be written by this user ({e}): `serve` needs to {} it, as the user it runs as",
                existing.display(),
                if existing == dir.as_path() {
                    "write in"
                } else {
                    "make the spool folder in"
                }
            ),
        )),
    }
}

/// Exit 0 clean, 1 errors, 3 warnings only.
fn verdict(problems: &[Problem]) -> ExitCode {
    let errors = problems.iter().filter(|p| p.is_error()).count();
    let warnings = problems.len() - errors;
    if problems.is_empty() {
        println!("no problems found");
        ExitCode::SUCCESS
    } else if errors > 0 {
        println!("{errors} error(s), {warnings} warning(s): not deployable");
        ExitCode::from(1)
    } else {
        println!("{warnings} warning(s), no errors");
        ExitCode::from(3)
    }
}

fn print_dispatch(d: &Dispatcher) {
    for g in &d.roster.acknowledged_gaps {
        let zone = d
            .roster
            .city(&g.city)
            .map_or(jiff::tz::TimeZone::UTC, |c| c.time_zone.clone());
        let local = |t: jiff::Timestamp| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        };
        println!(
            "{}: acknowledged gap in {} from {} to {} (local time): {}",
            d.roster.source,
            g.city,
            local(g.start),
            local(g.end),
            g.reason
        );
    }
    println!(
        "{}: {} lawyers, cities {}; offers go out on channel {:?}{}",
        d.roster.source,
        d.roster.lawyers().count(),
        d.roster.city_ids().join(", "),
        d.sms_channel,
        if d.sending_channels.contains(&d.sms_channel) {
            ""
        } else {
            " (which has no sending credentials here)"
        }
    );
}

/// One line per flow; with `list_screens`, one per screen too.
fn print_flows(flows: &FlowSet, list_screens: bool) {
    for flow in flows.flows.values() {
        let screens = lint::screens(flow);
        let worst = screens
            .iter()
            .map(|s| s.measure.sms_segments())
            .max()
            .unwrap_or(0);
        println!(
            "{}: flow {:?}, {} languages, {} screens, every screen at most {} SMS part(s)",
            flow.source,
            flow.id(),
            flow.spec.languages.len(),
            screens.len(),
            worst
        );
        if !list_screens {
            continue;
        }
        for s in &screens {
            println!(
                "  {}.{} [country {}{}]: {}/{} {} · SMS {} part(s)",
                s.key,
                s.lang,
                s.country,
                if s.reprompt { ", re-prompt" } else { "" },
                s.measure.units,
                s.measure.ussd_limit(),
                s.measure.encoding,
                s.measure.sms_segments()
            );
        }
    }
}

/// The SMS she receives (`confirm`, `unanswered`, `sms_help`), per
/// language and labelled by the callers' countries that receive each
/// version ([`lint::by_country`]: its fallback number may differ; `*`
/// every caller, `other` a country the flow does not name), as the
/// screens are.
fn print_sms(flows: &FlowSet) {
    for flow in flows.flows.values() {
        let m = &flow.spec.messages;
        let keywords = flow.spec.keywords.join(", ");
        for (key, text) in [
            ("confirm", &m.confirm),
            ("unanswered", &m.unanswered),
            ("sms_help", &m.sms_help),
        ] {
            let Some(text) = text else { continue };
            for lang in &flow.spec.languages {
                let variants = lint::by_country(flow, lang, |country| {
                    Some(crate::template::render(
                        &flow.text(text, lang, country),
                        &[("code", "0000"), ("keywords", &keywords)],
                    ))
                });
                for (label, t) in variants {
                    let ms = crate::text::measure(&t);
                    println!(
                        "  {}: SMS messages.{key}.{lang} [country {label}]: {} {} · SMS {} part(s)",
                        flow.source,
                        ms.units,
                        ms.encoding,
                        ms.sms_segments()
                    );
                }
            }
        }
    }
}

/// The longest answer each free-text variable can hold (a flow's
/// `max_len`; the largest over every flow and node that sets it).
fn free_text_limits(flows: &FlowSet) -> std::collections::BTreeMap<String, usize> {
    let mut limits = std::collections::BTreeMap::new();
    for flow in flows.flows.values() {
        for node in flow.spec.nodes.values() {
            if let crate::flow::model::Node::Input(i) = node {
                let l = limits.entry(i.var.clone()).or_insert(0);
                *l = (*l).max(i.max_len);
            }
        }
    }
    limits
}

/// A sample text measured: `76 UCS-2 · SMS 2 part(s)`.
fn measured(text: &str) -> String {
    let ms = crate::text::measure(text);
    format!(
        "{} {} · SMS {} part(s)",
        ms.units,
        ms.encoding,
        ms.sms_segments()
    )
}

/// Every lawyer text, per language, measured with sample values and, where
/// it quotes a free-text answer, again with every such answer at its
/// `max_len` in Cyrillic (`limits`): the most SMS parts it can take.
fn print_lawyer_texts(
    path: &std::path::Path,
    display: &str,
    limits: &std::collections::BTreeMap<String, usize>,
) {
    let Ok(table) = std::fs::read_to_string(path)
        .map_err(|_| ())
        .and_then(|t| toml::from_str::<toml::Table>(&t).map_err(|_| ()))
    else {
        return; // its problems are reported with the others
    };
    let sample = [
        ("code", "0000"),
        ("city", "Bishkek"),
        ("situation", "detained"),
        ("abuse", ""),
        ("location", "Station 5"),
        ("callback", "+996555000000"),
        ("minutes", "15"),
        ("name", "Aigul"),
        ("list", "0000, 0001"),
        ("count", "2"),
    ];
    for (lang, texts) in &table {
        let Some(texts) = texts.as_table() else {
            continue;
        };
        // `help` and `outcome_bad` list the outcome codes: the first word
        // of each outcome, in the file's (sorted) order.
        let codes: Vec<&str> = texts
            .get("outcomes")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flat_map(|t| t.values())
            .filter_map(|o| o.get("words")?.as_array()?.first()?.as_str())
            .collect();
        let codes = codes.join(" ");
        for (key, text) in texts {
            let Some(text) = text.as_str() else { continue };
            // An offer's location is cut to fit two parts (docs/dispatch.md;
            // the longest offer is measured per lawyer elsewhere).
            let (typical, worst) = if key == "help" || key == "outcome_bad" || key == "offer" {
                let t = if key == "offer" {
                    crate::template::render(text, &sample)
                } else {
                    crate::template::render(text, &[("list", codes.as_str())])
                };
                (t.clone(), t)
            } else {
                let longest: Vec<(&str, String)> = sample
                    .iter()
                    .map(|(k, v)| match limits.get(*k) {
                        Some(n) => (*k, "Ж".repeat(*n)),
                        None => (*k, (*v).to_owned()),
                    })
                    .collect();
                let longest: Vec<(&str, &str)> =
                    longest.iter().map(|(k, v)| (*k, v.as_str())).collect();
                (
                    crate::template::render(text, &sample),
                    crate::template::render(text, &longest),
                )
            };
            let worst = if worst == typical {
                String::new()
            } else {
                format!("; at most {} (answers at their max_len)", measured(&worst))
            };
            println!(
                "  {display}: lawyer text {lang}.{key}: {}{worst}",
                measured(&typical)
            );
        }
    }
}
