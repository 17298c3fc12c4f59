//! `hotline simulate`: a phone in the terminal, walking a flow over USSD.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::error::fail;
use super::{CliError, load_config};
use crate::app::App;
use crate::channel::{UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::ProcessEnv;
use crate::phone::PhoneNumber;
use crate::text::measure;

pub(super) fn simulate(flag: Option<PathBuf>, flow: Option<String>, number: &str) -> ExitCode {
    let (app, flow_id, from) = match simulated_phone(flag, flow, number) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let session_id = format!("sim-{:08x}", rand::random::<u32>());
    let mut text = String::new();
    let mut out = std::io::stdout();
    let mut lines = std::io::stdin().lock().lines();
    let mut screen_no = 1;
    loop {
        let answer = runtime.block_on(app.gateway.conversations().ussd(
            "simulator",
            &flow_id,
            UssdIn {
                session_id: session_id.clone(),
                from: from.clone(),
                service_code: "*000#".into(),
                input: UssdInput::Cumulative(text.clone()),
            },
        ));
        print_screen(&mut out, screen_no, &answer.text, answer.end);
        if answer.end {
            let _ = writeln!(out, "── session over ──");
            return ExitCode::SUCCESS;
        }
        let _ = write!(out, "> ");
        let _ = out.flush();
        let Some(Ok(line)) = lines.next() else {
            let _ = writeln!(out);
            return ExitCode::SUCCESS;
        };
        if !text.is_empty() || screen_no > 1 {
            text.push('*');
        }
        text.push_str(line.trim_end_matches(['\r', '\n']));
        screen_no += 1;
    }
}

/// The app on a memory store, the flow to run and the caller's number.
fn simulated_phone(
    flag: Option<PathBuf>,
    flow: Option<String>,
    number: &str,
) -> Result<(App, String, PhoneNumber), CliError> {
    let env = ProcessEnv;
    let (config, _) = load_config(flag.as_deref(), &env)?;
    let from = PhoneNumber::parse_international(number).map_err(|_| {
        CliError::Usage("--number must be an international number like +996555000001".into())
    })?;
    let store = App::memory_store(&config);
    let (app, _) = App::build(config, store, Clock::System, &env).map_err(CliError::Build)?;
    let flow_id = flow.unwrap_or_else(|| app.config.flows.default.clone());
    if app.flows.get(&flow_id).is_none() {
        return Err(CliError::Usage(format!("no flow {flow_id:?}")));
    }
    Ok((app, flow_id, from))
}

/// A screen as a handset would show it, with its length and encoding.
fn print_screen(out: &mut impl Write, screen_no: u32, text: &str, end: bool) {
    let m = measure(text);
    let verdict = if m.fits_ussd() { "fits" } else { "TOO LONG" };
    let _ = writeln!(
        out,
        "── screen {screen_no} · {} · {}/{} characters · {} · {verdict} ──",
        if end { "END" } else { "CON" },
        m.units,
        m.ussd_limit(),
        m.encoding
    );
    let _ = writeln!(out, "{text}");
}
