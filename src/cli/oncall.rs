//! `hotline oncall`: the on-call schedule as people read it — per city,
//! each shift with its lawyers and local times (the city's time zone),
//! overrides marked, gaps marked — from now for `--days` days.
//!
//! Built from [`Roster::schedule`], the same resolution dispatch uses.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use jiff::Timestamp;

use super::cases::load_roster;
use super::error::fail;
use super::{CliError, load_config};
use crate::config::ProcessEnv;
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
    Ok(schedule_text(&roster, &cities, Timestamp::now(), hours))
}

/// The schedule of `cities` over `hours` from `from`, as text.
pub(super) fn schedule_text(
    roster: &Roster,
    cities: &[&str],
    from: Timestamp,
    hours: u32,
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
