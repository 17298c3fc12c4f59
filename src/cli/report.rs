//! `hotline report`: statistics safe to publish, read from Redis.

use std::path::PathBuf;
use std::process::ExitCode;

use super::error::fail;
use super::{CliError, build_store, load_config};
use crate::config::{Config, ProcessEnv, StoreKind};

pub(super) fn report(flag: Option<PathBuf>, format: &str, threshold: u64) -> ExitCode {
    let config = match report_config(flag, format) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(report_text(&config, format, threshold.max(1))) {
        Ok(out) => {
            print!("{out}");
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

async fn report_text(config: &Config, format: &str, threshold: u64) -> Result<String, CliError> {
    let store = build_store(config).await?;
    let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
    let stats = crate::dispatch::report::collect(store.as_ref(), &privacy)
        .await
        .map_err(CliError::ReadCases)?;
    let tables = crate::dispatch::report::build(&stats, threshold);
    Ok(if format == "csv" {
        crate::dispatch::report::to_csv(&tables, threshold)
    } else {
        crate::dispatch::report::to_markdown(&tables, threshold)
    })
}
