//! `hotline simulate`: a phone in the terminal, walking a flow over USSD;
//! then, with dispatch over a `console` channel, the rest of the chain.
//!
//! The app runs on an embedded store and a manual [`Clock`]; no background
//! worker runs. After her last screen the outbox is ticked at once, so the
//! offer appears; then each line typed is an SMS from the lawyer (`--lawyer
//! NAME`, else the one who got the first offer), `:as NAME` answers as
//! another (an id or a name, found as `test-sms` finds her), and `:wait 10m` moves the clock forward a minute at a time,
//! ticking the timer and outbox workers (`tick(now)`) at each step, so
//! escalation shows in no time. `:quit` (or end of input) ends it.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::error::fail;
use super::{CliError, load_config};
use crate::app::App;
use crate::channel::{SmsIn, UssdIn, UssdInput};
use crate::clock::Clock;
use crate::config::ProcessEnv;
use crate::dispatch::Dispatcher;
use crate::dispatch::cover::find_lawyer;
use crate::dispatch::timers::TimerWorker;
use crate::phone::PhoneNumber;
use crate::text::measure;

/// The longest `:wait`: two days, a minute at a time.
const MAX_WAIT: Duration = Duration::from_secs(48 * 3600);

type Lines<'a> = std::io::Lines<std::io::StdinLock<'a>>;

pub(super) fn simulate(
    flag: Option<PathBuf>,
    flow: Option<String>,
    number: &str,
    lawyer: Option<String>,
) -> ExitCode {
    let (app, clock, flow_id, from) = match simulated_phone(flag, flow, number) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let mut out = std::io::stdout();
    let mut lines = std::io::stdin().lock().lines();
    if !walk(&runtime, &app, &flow_id, &from, &mut out, &mut lines) {
        return ExitCode::SUCCESS;
    }
    let mut after = Afterwards {
        app,
        clock,
        seen: 0,
        lawyer,
    };
    runtime.block_on(after.run(&mut out, &mut lines));
    ExitCode::SUCCESS
}

/// Her USSD session, screen by screen; whether it reached its last screen.
fn walk(
    runtime: &tokio::runtime::Runtime,
    app: &App,
    flow_id: &str,
    from: &PhoneNumber,
    out: &mut impl Write,
    lines: &mut Lines<'_>,
) -> bool {
    let session_id = format!("sim-{:08x}", rand::random::<u32>());
    let mut text = String::new();
    let mut screen_no = 1;
    loop {
        let answer = runtime.block_on(app.gateway.conversations().ussd(
            "simulator",
            flow_id,
            UssdIn {
                hop_id: None,
                session_id: session_id.clone(),
                from: from.clone(),
                service_code: "*000#".into(),
                input: UssdInput::Cumulative(text.clone()),
            },
        ));
        print_screen(out, screen_no, &answer.text, answer.end);
        if answer.end {
            let _ = writeln!(out, "── session over ──");
            return true;
        }
        let _ = write!(out, "> ");
        let _ = out.flush();
        let Some(Ok(line)) = lines.next() else {
            let _ = writeln!(out);
            return false;
        };
        if !text.is_empty() || screen_no > 1 {
            text.push('*');
        }
        text.push_str(line.trim_end_matches(['\r', '\n']));
        screen_no += 1;
    }
}

/// What happens after her last screen: offers, the lawyer's answers, time.
struct Afterwards {
    app: App,
    clock: Clock,
    /// The last console message shown.
    seen: u64,
    /// Who typed lines come from: a roster id (before the first offer, as
    /// typed with `--lawyer`).
    lawyer: Option<String>,
}

impl Afterwards {
    async fn run(&mut self, out: &mut impl Write, lines: &mut Lines<'_>) {
        let Some((console, d)) = self.console().zip(self.app.dispatcher()) else {
            let _ = writeln!(
                out,
                "(no dispatch over a console channel in this config: offers are not shown here)"
            );
            return;
        };
        let timers = TimerWorker::new(d.clone(), Duration::from_secs(1));
        if let Some(typed) = self.lawyer.take() {
            self.answer_as(&d, &typed, out);
        }
        self.step(&timers, out).await;
        let _ = writeln!(
            out,
            "Answer as the lawyer (e.g. OK 1234), :as NAME to answer as another, :wait 10m to let time pass, :quit"
        );
        loop {
            let who = self.lawyer.clone().or_else(|| self.first_offered(&d));
            let _ = write!(out, "{}> ", who.as_deref().unwrap_or("lawyer"));
            let _ = out.flush();
            let Some(Ok(line)) = lines.next() else { return };
            let line = line.trim();
            if line == ":quit" {
                return;
            } else if let Some(name) = line.strip_prefix(":as ") {
                self.answer_as(&d, name, out);
            } else if let Some(span) = line.strip_prefix(":wait ") {
                self.wait(span, &timers, out).await;
            } else if !line.is_empty() {
                self.reply(who.as_deref(), &d, &console, line, out).await;
                self.step_after(&timers, who.as_deref(), out).await;
            }
        }
    }

    /// Answer from now on as the lawyer `typed` names: her roster id or
    /// her name, as `test-sms` and a coordinator's `COVER` find her
    /// ([`find_lawyer`]). Nobody by that name: say so, and keep answering
    /// as before.
    fn answer_as(&mut self, d: &Dispatcher, typed: &str, out: &mut impl Write) {
        if let Some(l) = find_lawyer(&d.roster, typed) {
            self.lawyer = Some(l.id.as_str().to_owned());
            return;
        }
        let example = d
            .roster
            .lawyers()
            .next()
            .map_or_else(String::new, |l| format!(", e.g. :as {}", l.id.as_str()));
        let _ = writeln!(
            out,
            "(no lawyer \"{}\" in the roster: give her id or name{example})",
            typed.trim()
        );
    }

    fn console(&self) -> Option<String> {
        self.app
            .channels
            .iter()
            .find_map(|(n, c)| c.console().map(|_| n.clone()))
    }

    /// The lawyer who got the first offer shown.
    fn first_offered(&self, d: &Dispatcher) -> Option<String> {
        let name = self.console()?;
        let console = self.app.channels.get(&name)?.console()?;
        console
            .messages()
            .iter()
            .find_map(|m| d.roster.lawyer_by_phone(&m.to))
            .map(|l| l.id.as_str().to_owned())
    }

    async fn reply(
        &self,
        who: Option<&str>,
        d: &Dispatcher,
        console: &str,
        text: &str,
        out: &mut impl Write,
    ) {
        let Some(lawyer) = who.and_then(|w| d.roster.lawyer(w)) else {
            let _ = writeln!(
                out,
                "(no lawyer has been offered a case yet: :as NAME to answer as one)"
            );
            return;
        };
        let msg = SmsIn {
            message_id: Some(format!("sim-{:016x}", rand::random::<u64>())),
            from: lawyer.phone.clone(),
            to: console.to_owned(),
            text: text.to_owned(),
        };
        self.app.gateway.sms(console, &[msg]).await;
    }

    /// Let `span` pass (`10m`, `90s`, `2h`), a minute at a time.
    async fn wait(&mut self, span: &str, timers: &TimerWorker, out: &mut impl Write) {
        let Some(total) = parse_span(span.trim()).filter(|d| *d <= MAX_WAIT) else {
            let _ = writeln!(
                out,
                "(say how long, up to 48h: :wait 90s, :wait 10m, :wait 2h)"
            );
            return;
        };
        let mut left = total;
        while !left.is_zero() {
            let step = left.min(Duration::from_secs(60));
            self.clock.advance_by(step);
            left -= step;
            self.step(timers, out).await;
        }
        let _ = writeln!(out, "── {} later ──", span.trim());
    }

    /// Fire due timers, send due messages, show what the console got.
    async fn step(&mut self, timers: &TimerWorker, out: &mut impl Write) {
        self.step_after(timers, None, out).await;
    }

    /// [`Afterwards::step`] after `typed_by` (a roster id) sent a line.
    ///
    /// The outbox sends from its buckets in no fixed order, so the
    /// messages of one step are shown in one: to the lawyer who typed
    /// first (the answer to what she sent), then to the other lawyers by
    /// id, then to her.
    async fn step_after(
        &mut self,
        timers: &TimerWorker,
        typed_by: Option<&str>,
        out: &mut impl Write,
    ) {
        let now = self.clock.now_ms();
        timers.tick(now).await;
        self.app.outbox.tick(now).await;
        let Some(name) = self.console() else { return };
        let Some(console) = self.app.channels.get(&name).and_then(|c| c.console()) else {
            return;
        };
        let d = self.app.dispatcher();
        let mut sent: Vec<_> = console
            .since(self.seen)
            .into_iter()
            .map(|m| {
                let lawyer = d
                    .as_ref()
                    .and_then(|d| d.roster.lawyer_by_phone(&m.to))
                    .map(|l| l.id.as_str().to_owned());
                (m, lawyer)
            })
            .collect();
        sent.sort_by_key(|(m, lawyer)| match lawyer {
            Some(id) if Some(id.as_str()) == typed_by => (0, String::new(), m.seq),
            Some(id) => (1, id.clone(), m.seq),
            None => (2, String::new(), m.seq),
        });
        for (m, lawyer) in sent {
            self.seen = self.seen.max(m.seq);
            let who = lawyer.map_or_else(|| "her".to_owned(), |id| format!("lawyer {id}"));
            let ms = measure(&m.text);
            let _ = writeln!(
                out,
                "── SMS to {who} ({}) · {} · {} part(s) ──\n{}",
                m.to.as_str(),
                ms.encoding,
                ms.sms_segments(),
                m.text
            );
        }
    }
}

/// `90s`, `10m`, `2h`.
fn parse_span(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The app on a memory store and a manual clock, the flow to run and the
/// caller's number.
fn simulated_phone(
    flag: Option<PathBuf>,
    flow: Option<String>,
    number: &str,
) -> Result<(App, Clock, String, PhoneNumber), CliError> {
    let env = ProcessEnv;
    let (config, _) = load_config(flag.as_deref(), &env)?;
    let from = PhoneNumber::parse_international(number).map_err(|_| {
        CliError::Usage("--number must be an international number like +996555000001".into())
    })?;
    let store = App::memory_store(&config);
    let clock = Clock::manual(Clock::System.now_ms());
    let (app, _) = App::build(config, store, clock.clone(), &env).map_err(CliError::Build)?;
    let flow_id = flow.unwrap_or_else(|| app.config.flows.default.clone());
    if app.flows().get(&flow_id).is_none() {
        return Err(CliError::Usage(format!("no flow {flow_id:?}")));
    }
    Ok((app, clock, flow_id, from))
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

#[cfg(test)]
mod tests {
    use super::parse_span;
    use std::time::Duration;

    #[test]
    fn spans() {
        assert_eq!(parse_span("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_span("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_span("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_span("m"), None);
        assert_eq!(parse_span("10"), None);
        assert_eq!(parse_span("10d"), None);
    }
}
