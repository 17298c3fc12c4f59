//! `hotline check`: everything `serve` would load, without binding a port;
//! every screen measured.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load_config, print_problems};
use crate::channel::Channel;
use crate::clock::Clock;
use crate::config::{Config, Env, LoadError, ProcessEnv, StoreKind};
use crate::dispatch::Dispatcher;
use crate::flow::{FlowSet, lint};
use crate::problem::Problem;

pub(super) fn check(flag: Option<PathBuf>, list_screens: bool) -> ExitCode {
    let env = ProcessEnv;
    let (config, mut problems) = match load_config(flag.as_deref(), &env) {
        Ok(x) => x,
        Err(e) => {
            print_problems(e.problems());
            return ExitCode::from(match e {
                LoadError::Unreadable(_) => 2,
                LoadError::Invalid(_) => 1,
            });
        }
    };
    let (flows, mut flow_problems) = crate::app::load_flows(&config);
    let (channels, mut channel_problems) = crate::app::build_channels(&config, &flows);
    problems.append(&mut flow_problems);
    problems.append(&mut channel_problems);
    let flows = Arc::new(flows);
    let (dispatcher, mut dispatch_problems) = check_dispatch(&config, &flows, &channels, &env);
    problems.append(&mut dispatch_problems);
    problems.extend(crate::flow::countries::check(
        &flows,
        &config.source,
        dispatcher.as_deref().map(|d| &d.roster),
    ));
    if let Some(d) = &dispatcher {
        print_dispatch(d);
        super::test_sms::print_unverified(&config, d);
    }
    print_flows(&flows, list_screens);
    println!(
        "{}: {} channel(s), store {}, {} flow(s)",
        config.source,
        channels.len(),
        match config.store.kind {
            StoreKind::Memory => "memory",
            StoreKind::Redis(_) => "redis",
        },
        flows.flows.len()
    );
    print_problems(&problems);
    if problems.is_empty() {
        println!("no problems found");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s) found", problems.len());
        ExitCode::from(1)
    }
}

/// Load the roster and texts as `serve` would, to report their problems.
fn check_dispatch(
    config: &Config,
    flows: &Arc<FlowSet>,
    channels: &HashMap<String, Arc<dyn Channel>>,
    env: &dyn Env,
) -> (Option<Arc<Dispatcher>>, Vec<Problem>) {
    let privacy = crate::privacy::Privacy::new(&config.privacy.pii_key);
    crate::app::load_dispatch(
        config,
        flows,
        channels,
        &privacy,
        env,
        Clock::System.now_ms(),
    )
}

fn print_dispatch(d: &Dispatcher) {
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
