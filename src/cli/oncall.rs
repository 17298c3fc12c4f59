//! `hotline oncall`: the on-call schedule as people read it — per city,
//! each shift with its lawyers and local times (the city's time zone),
//! overrides marked, gaps marked — from now for `--days` days.
//!
//! Built from [`Roster::schedule`], the same resolution dispatch uses.
//! Under each city, the lawyers who sent `OFF` (names only): read from
//! Redis; the memory store's flags live inside the running gateway, whose
//! status page shows them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::cases::load_roster;
use super::error::fail;
use super::{CliError, build_store, load_config};
use crate::config::{Config, ProcessEnv, StoreKind};
use crate::dispatch::board;
use crate::dispatch::roster::{MAX_REPORT_HOURS, Roster};

pub(super) fn oncall(flag: Option<PathBuf>, days: u32, city: Option<String>) -> ExitCode {
    match text(flag, days, city.as_deref()) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn text(flag: Option<PathBuf>, days: u32, city: Option<&str>) -> Result<String, CliError> {
    let (config, _) = load_config(flag.as_deref(), &ProcessEnv)?;
    let Some(roster) = load_roster(&config)? else {
        return Err(CliError::Usage(
            "dispatch is not configured: there is no roster ([dispatch] roster = …)".into(),
        ));
    };
    let hours = days.saturating_mul(24);
    if hours == 0 || hours > MAX_REPORT_HOURS {
        return Err(CliError::Usage(format!(
            "--days must be between 1 and {}",
            MAX_REPORT_HOURS / 24
        )));
    }
    let cities: Vec<&str> = match city {
        Some(c) => match roster.city(c) {
            Some(full) => vec![full.id.as_str()],
            None => {
                return Err(CliError::Usage(format!(
                    "no city {c:?} in the roster (cities: {})",
                    roster.city_ids().join(", ")
                )));
            }
        },
        None => board::full_cities(&roster),
    };
    let off = off_call(&config, &roster);
    Ok(schedule_text(
        &roster,
        &cities,
        Timestamp::now(),
        hours,
        off.as_ref().map_err(|e| *e),
    ))
}

/// Who sent `OFF`, read from Redis (`Err`: why it is not known here).
fn off_call(config: &Config, roster: &Roster) -> Result<BTreeSet<String>, &'static str> {
    if config.store.kind == StoreKind::Memory {
        return Err("kept by the running gateway (memory store): see its status page");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|_| "not read")?;
    runtime.block_on(async {
        let read = async {
            let store = build_store(config).await.map_err(|_| ())?;
            let now = crate::clock::Clock::System.now_ms();
            let mut off = BTreeSet::new();
            for l in roster.lawyers() {
                let key = crate::store::keys::lawyer_off(l.id.as_str());
                if store.get(None, &key, now).await.map_err(|_| ())?.is_some() {
                    off.insert(l.id.as_str().to_owned());
                }
            }
            Ok::<_, ()>(off)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
            Ok(Ok(off)) => Ok(off),
            _ => Err("not known: the store could not be read"),
        }
    })
}

/// The schedule of `cities` over `hours` from `from`, as text.
pub(super) fn schedule_text(
    roster: &Roster,
    cities: &[&str],
    from: Timestamp,
    hours: u32,
    off: Result<&BTreeSet<String>, &str>,
) -> String {
    let mut out = String::new();
    for (i, id) in cities.iter().enumerate() {
        let Some(city) = roster.city(id) else {
            continue;
        };
        let tz = &city.time_zone;
        let offset = tz.to_offset(from);
        let _ = writeln!(
            out,
            "{}{} — {} ({}, UTC{offset})",
            if i > 0 { "\n" } else { "" },
            city.id,
            city.name("en"),
            city.time_zone_name,
        );
        let _ = match off {
            Ok(off) => {
                let names: Vec<String> = roster
                    .lawyers()
                    .filter(|l| off.contains(l.id.as_str()) && l.cities.iter().any(|c| c == *id))
                    .map(|l| format!("{} ({})", l.name, l.id))
                    .collect();
                if names.is_empty() {
                    writeln!(out, "  off call (sent OFF): nobody")
                } else {
                    writeln!(
                        out,
                        "  off call (sent OFF; skipped until ON): {}",
                        names.join(", ")
                    )
                }
            }
            Err(why) => writeln!(out, "  off call (sent OFF): {why}"),
        };
        for slot in roster.schedule(id, from, hours) {
            let start = slot.start.to_zoned(tz.clone());
            let end = slot.end.to_zoned(tz.clone());
            let end_fmt = if end.date() == start.date() {
                end.strftime("%H:%M").to_string()
            } else {
                end.strftime("%a %d %b %H:%M").to_string()
            };
            let who = if slot.lawyers.is_empty() {
                "GAP — nobody on call".to_owned()
            } else {
                slot.lawyers
                    .iter()
                    .map(|l| match roster.lawyer(l.as_str()) {
                        Some(law) => format!("{} ({l})", law.name),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", then ")
            };
            let mark = if slot.overridden { "  [override]" } else { "" };
            let _ = writeln!(
                out,
                "  {} → {:<16}  {who}{mark}",
                start.strftime("%a %d %b %H:%M"),
                end_fmt
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lawyers_off_call_are_named_under_their_city_never_their_number() {
        let roster = crate::dispatch::lifecycle::tests::roster();
        let from = Timestamp::from_millisecond(1_796_097_600_000).unwrap();
        let off: BTreeSet<String> = ["bakyt".to_owned()].into();
        let text = schedule_text(&roster, &["bishkek"], from, 24, Ok(&off));
        assert!(
            text.contains("  off call (sent OFF; skipped until ON): Bakyt (bakyt)\n"),
            "{text}"
        );
        assert!(!text.contains("555000102"), "{text}");
        let none = schedule_text(&roster, &["bishkek"], from, 24, Ok(&BTreeSet::new()));
        assert!(none.contains("  off call (sent OFF): nobody\n"), "{none}");
        let unknown = schedule_text(&roster, &["bishkek"], from, 24, Err("not known"));
        assert!(
            unknown.contains("  off call (sent OFF): not known\n"),
            "{unknown}"
        );
    }
}
