//! `hotline report`: statistics safe to publish, read from Redis.

use std::path::PathBuf;
use std::process::ExitCode;

use super::error::fail;
use super::{CliError, build_store, load_config};
use crate::config::{Config, ProcessEnv, StoreKind};

pub(super) fn report(
    flag: Option<PathBuf>,
    format: &str,
    threshold: u64,
    city: Option<&str>,
) -> ExitCode {
    let config = match report_config(flag, format).and_then(|c| known_city(c, city)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(report_text(&config, format, threshold.max(1), city)) {
        Ok((out, unreadable)) => {
            print!("{out}");
            if unreadable > 0 {
                // On stderr: the report itself stays fit to publish.
                eprintln!(
                    "hotline: warning: {unreadable} case(s) could not be read (sealed under another HOTLINE_PII_KEY, or by another version) and are in no table"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The config to report on, refusing what cannot work: a format other than
/// `md` or `csv`, or the memory store (nothing to read from this process).
fn report_config(flag: Option<PathBuf>, format: &str) -> Result<Config, CliError> {
    if format != "md" && format != "csv" {
        return Err(CliError::Usage("--format must be md or csv".into()));
    }
    let (config, _) = load_config(flag.as_deref(), &ProcessEnv)?;
    if config.store.kind == StoreKind::Memory {
        return Err(CliError::MemoryStore);
    }
    Ok(config)
}

/// `--city` must name a city of the flows (checked before Redis is read).
fn known_city(config: Config, city: Option<&str>) -> Result<Config, CliError> {
    let Some(city) = city else {
        return Ok(config);
    };
    let (flows, _) = crate::app::load_flows(&config);
    let cities = flows.cities();
    if cities.contains(city) {
        Ok(config)
    } else {
        let known: Vec<&str> = cities.iter().map(String::as_str).collect();
        Err(CliError::Usage(format!(
            "--city must be one of the flows' cities: {}",
            known.join(", ")
        )))
    }
}

/// The report, and how many cases could not be read.
async fn report_text(
    config: &Config,
    format: &str,
    threshold: u64,
    city: Option<&str>,
) -> Result<(String, usize), CliError> {
    use crate::dispatch::report;
    let store = build_store(config).await?;
    let privacy = crate::privacy::Privacy::from_config(&config.privacy);
    let collected = report::collect(store.as_ref(), &privacy)
        .await
        .map_err(CliError::ReadCases)?;
    let mut stats = collected.stats;
    if let Some(city) = city {
        stats.retain(|s| s.city == city);
    }
    let tables = report::build(&stats, threshold);
    let outcomes = report::build_outcomes(&stats, threshold);
    let text = if format == "csv" {
        report::to_csv(&tables, threshold) + &report::outcomes_csv(&outcomes, threshold)
    } else {
        let md = report::to_markdown(&tables, threshold);
        let md = match city {
            Some(city) => md.replacen(
                "# Hotline statistics\n",
                &format!("# Hotline statistics: {city} only\n"),
                1,
            ),
            None => md,
        };
        md + &report::outcomes_markdown(&outcomes, threshold)
    };
    Ok((text, collected.unreadable))
}
