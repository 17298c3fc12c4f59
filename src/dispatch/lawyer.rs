//! A lawyer's SMS: `OK 4821`, `NO`, `DONE 4821 [outcome …]`, `ON`, `OFF`, `STATUS`,
//! `HELP` (a coordinator's `ASSIGN`, `COVER`, `CASES`, `WHO` are carried
//! out in `coordinator.rs`).
//!
//! Commands about a case change it through the pure lifecycle
//! ([`Dispatcher::change_case`]); the rest answer from the store. Every
//! answer goes out through the outbox on the channel she wrote on (when it
//! can send). A reply that is not part of a case change is keyed by the
//! inbound delivery, so a retried webhook queues it once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Dispatcher;
use super::commands::{self, Command};
use super::lifecycle::{self, Action, Reply};
use super::roster::Lawyer;
use super::texts::Texts;
use crate::case::CaseData;
use crate::outbox::{self, Purpose};
use crate::phone::PhoneNumber;
use crate::store::{BUCKETS, CaseRecord, KvWrite, StoreError, code_bucket, keys};
use crate::template::render;

/// At most this many codes in a `STATUS` answer (as `CASES` lists per city).
const MAX_STATUS: usize = 12;
/// How a lawyer's command ended (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Done as asked.
    Ok,
    /// The lifecycle refused (taken by someone else, not offered, closed).
    Refused,
    /// No case has that code.
    NotFound,
    /// A bare command, and nothing waits on her.
    NonePending,
    /// A bare command, and several cases could be meant.
    Ambiguous,
    /// Not a command: she was sent the help.
    Unknown,
    /// `DONE` with an outcome word not configured: she was sent the valid
    /// codes, and nothing changed.
    BadOutcome,
    /// The store failed: the aggregator should deliver it again.
    StoreUnavailable,
}

impl CommandOutcome {
    /// Every outcome, for zeroed metric series.
    pub const ALL: [CommandOutcome; 8] = [
        CommandOutcome::Ok,
        CommandOutcome::Refused,
        CommandOutcome::NotFound,
        CommandOutcome::NonePending,
        CommandOutcome::Ambiguous,
        CommandOutcome::Unknown,
        CommandOutcome::BadOutcome,
        CommandOutcome::StoreUnavailable,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Refused => "refused",
            CommandOutcome::NotFound => "not_found",
            CommandOutcome::NonePending => "none_pending",
            CommandOutcome::Ambiguous => "ambiguous",
            CommandOutcome::Unknown => "unknown",
            CommandOutcome::BadOutcome => "bad_outcome",
            CommandOutcome::StoreUnavailable => "store_unavailable",
        }
    }
}

/// What round trip one of a lawyer's command read (the gateway's
/// [`crate::store::Store::begin_case_command`] or
/// [`crate::store::Store::begin_lawyer_command`]).
#[derive(Debug, Clone, Default)]
pub enum Begun {
    /// Nothing: the command reads what it needs.
    #[default]
    Nothing,
    /// The case of the code she typed (`None`: no such case).
    Code(Option<CaseRecord>),
    /// The open cases of her index (a command without a code); an `ON` or
    /// `OFF` was written with it ([`Dispatcher::off_flag`]).
    Index(Vec<(u16, CaseRecord)>),
}

/// One command being handled.
pub(super) struct Call<'a> {
    pub(super) lawyer: &'a Lawyer,
    pub(super) texts: &'a Texts,
    /// Where replies go.
    pub(super) channel: &'a str,
    /// The inbound delivery, for reply idempotency.
    pub(super) delivery: &'a str,
    /// What round trip one read, so it is not read again.
    pub(super) begun: Begun,
    /// The delivery's mark, written with the case change it makes.
    pub(super) mark: Option<KvWrite>,
    /// The mark is global (beside her index), not in the case's bucket.
    pub(super) mark_global: bool,
    /// Whether a case change wrote the mark.
    pub(super) marked: AtomicBool,
}

impl Dispatcher {
    /// The lawyer whose number this is, if any.
    pub fn lawyer_for(&self, phone: &PhoneNumber) -> Option<&Lawyer> {
        self.roster.lawyer_by_phone(phone)
    }

    /// The code of a command about one case by its code (`OK 4821`, `NO
    /// 4821`, `DONE 4821`), whose delivery can be deduplicated in the
    /// code's bucket (see [`crate::store::Store::begin_case_command`]).
    pub fn case_code(text: &str) -> Option<String> {
        match commands::parse(text) {
            Command::Accept(Some(code))
            | Command::Decline(Some(code))
            | Command::Done {
                code: Some(code), ..
            } if code_bucket(&code).is_some() => Some(code),
            _ => None,
        }
    }

    /// Handle an SMS from `lawyer` received on `channel`; `delivery`
    /// identifies the inbound message (its retries share it). With what
    /// round trip one read (`begun`) and the delivery's mark to write with
    /// the change it makes (`true`: a global mark, beside her index);
    /// returns the outcome and whether the mark was written.
    pub async fn command_with(
        &self,
        channel: &str,
        lawyer: &Lawyer,
        text: &str,
        delivery: &str,
        begun: Begun,
        mark: Option<(KvWrite, bool)>,
    ) -> (CommandOutcome, bool) {
        let cmd = commands::parse(text);
        let reply_channel = if self.sending_channels.contains(channel) {
            channel
        } else {
            self.sms_channel.as_str()
        };
        let call = Call {
            lawyer,
            texts: self.texts.for_langs(&lawyer.languages),
            channel: reply_channel,
            delivery,
            begun,
            mark_global: mark.as_ref().is_some_and(|(_, global)| *global),
            mark: mark.map(|(m, _)| m),
            marked: AtomicBool::new(false),
        };
        let outcome = self
            .run_command(&call, &cmd)
            .await
            .unwrap_or(CommandOutcome::StoreUnavailable);
        self.deps
            .metrics
            .lawyer_commands
            .with_label_values(&[cmd.as_str(), outcome.as_str()])
            .inc();
        tracing::info!(lawyer = %lawyer.id, command = cmd.as_str(), outcome = outcome.as_str(), "lawyer command");
        (outcome, call.marked.load(Ordering::SeqCst))
    }

    async fn run_command(
        &self,
        call: &Call<'_>,
        cmd: &Command,
    ) -> Result<CommandOutcome, StoreError> {
        let t = call.texts;
        match cmd {
            Command::Accept(code) | Command::Decline(code) => {
                self.case_command(call, cmd, code.as_deref(), Vec::new())
                    .await
            }
            Command::Done { code, outcomes } => {
                let Some(ids) = self.outcome_ids(outcomes) else {
                    self.tell(call, "outcome_bad", t.outcome_bad_text()).await?;
                    return Ok(CommandOutcome::BadOutcome);
                };
                self.case_command(call, cmd, code.as_deref(), ids).await
            }
            Command::On | Command::Off => self.on_off(call, matches!(cmd, Command::Off)).await,
            Command::Status => {
                let text = self.status_text(call).await?;
                self.tell(call, "status", text).await?;
                Ok(CommandOutcome::Ok)
            }
            Command::Help => {
                self.tell(call, "help", t.help_text()).await?;
                Ok(CommandOutcome::Ok)
            }
            Command::Assign { code, lawyer } => self.assign(call, code, lawyer).await,
            Command::Cover {
                lawyer,
                city,
                until,
            } => self.cover(call, lawyer, city.as_deref(), *until).await,
            Command::Cases => self.cases(call).await,
            Command::Who => self.who(call).await,
            Command::Unknown => {
                self.tell(call, "help", t.help_text()).await?;
                Ok(CommandOutcome::Unknown)
            }
        }
    }

    /// The outcome ids of the words of a `DONE`, in order, each once;
    /// `None` when a word is not a configured outcome in any language.
    fn outcome_ids(&self, words: &[String]) -> Option<Vec<String>> {
        let mut ids: Vec<String> = Vec::new();
        for w in words {
            let id = self.texts.outcome(w)?;
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_owned());
            }
        }
        Some(ids)
    }

    /// `OK`, `NO`, `DONE` (with the outcome ids given), with or without a
    /// code.
    async fn case_command(
        &self,
        call: &Call<'_>,
        cmd: &Command,
        code: Option<&str>,
        outcomes: Vec<String>,
    ) -> Result<CommandOutcome, StoreError> {
        let target = match code {
            Some(code) => self.by_code(call, code).await?,
            None => self.the_only_case(call, cmd).await?,
        };
        let (bucket, rec) = match target {
            Ok(x) => x,
            Err(outcome) => return Ok(outcome),
        };
        let retention = self.retention_ms;
        let kind = cmd.clone();
        let who = call.lawyer.id.as_str().to_owned();
        let id = rec.id.clone();
        // Accepted by its code without an offer (a coordinator taking a
        // case): her index gets it, so that her bare `DONE` finds it.
        let unoffered = matches!(cmd, Command::Accept(Some(_)))
            && self
                .open_case(&rec)
                .is_some_and(|d| !d.dispatch.offers.iter().any(|o| o.lawyer == who));
        let actions = self
            .change_loaded_case(
                bucket,
                &id,
                Some(rec),
                call.mark
                    .as_ref()
                    .map(|m| (m, call.mark_global, &call.marked)),
                call.channel,
                move |case, ctx| match &kind {
                    Command::Accept(_) => lifecycle::accept(&mut case.dispatch, ctx, &who),
                    Command::Decline(_) => lifecycle::decline(&mut case.dispatch, ctx, &who),
                    _ => lifecycle::close(&mut case.dispatch, ctx, &who, retention, &outcomes),
                },
            )
            .await?;
        let refused = actions.as_deref().unwrap_or_default().iter().any(|a| {
            matches!(a, Action::Reply(_, r) if !matches!(r, Reply::Accepted | Reply::Declined | Reply::Closed(_) | Reply::ClosedUnaccepted(_)))
        });
        if unoffered && !refused && actions.is_some() {
            let now = self.deps.clock.now_ms();
            let entry =
                crate::outbox::worker::lawyer_index_entry(call.lawyer.id.as_str(), bucket, &id);
            if let Err(e) = self.deps.store.set_add(None, entry, now).await {
                tracing::warn!(error = %e, "a case accepted without an offer is not in her index; her bare DONE will not find it");
            }
        }
        Ok(if refused {
            CommandOutcome::Refused
        } else {
            CommandOutcome::Ok
        })
    }

    /// The case with `code` (its bucket and record, one lookup), or the
    /// outcome after telling her it is unknown.
    pub(super) async fn by_code(
        &self,
        call: &Call<'_>,
        code: &str,
    ) -> Result<Result<(u16, CaseRecord), CommandOutcome>, StoreError> {
        let found = match &call.begun {
            Begun::Code(found) => found.clone(),
            _ => self.deps.store.case_by_code(code).await?,
        };
        match found {
            Some(rec) => Ok(Ok((code_bucket(code).unwrap_or(0), rec))),
            None => {
                let text = render(&call.texts.not_found, &[("code", code)]);
                self.tell(call, "nf", text).await?;
                Ok(Err(CommandOutcome::NotFound))
            }
        }
    }

    /// A bare command: the only case waiting on this lawyer (accept,
    /// decline) or held by her (done).
    async fn the_only_case(
        &self,
        call: &Call<'_>,
        cmd: &Command,
    ) -> Result<Result<(u16, CaseRecord), CommandOutcome>, StoreError> {
        let me = call.lawyer.id.as_str();
        let mine: Vec<(u16, CaseRecord)> = self
            .cases_of(call)
            .await?
            .into_iter()
            .filter(|(_, _, d)| match cmd {
                Command::Done { .. } => d.dispatch.accepted_by.as_deref() == Some(me),
                _ => lifecycle::pending_for(&d.dispatch, me),
            })
            .map(|(b, r, _)| (b, r))
            .collect();
        match mine.as_slice() {
            [] if matches!(cmd, Command::Accept(None)) && self.answer_welcome(call).await? => {
                Ok(Err(CommandOutcome::Ok))
            }
            [] => {
                self.tell(call, "none", call.texts.none_pending.clone())
                    .await?;
                Ok(Err(CommandOutcome::NonePending))
            }
            [(b, r)] => Ok(Ok((*b, r.clone()))),
            many => {
                let list: Vec<String> = many.iter().map(|(_, r)| r.named_code()).collect();
                let joined = list.join(", ");
                let text = render(&call.texts.which, &[("list", &joined), ("code", &list[0])]);
                self.tell(call, "which", text).await?;
                Ok(Err(CommandOutcome::Ambiguous))
            }
        }
    }

    /// The write of an `ON` / `OFF` from `lawyer` (her off flag), to make
    /// with round trip one; `None` for any other command.
    pub fn off_flag(lawyer: &Lawyer, text: &str) -> Option<KvWrite> {
        let key = keys::lawyer_off(lawyer.id.as_str());
        match commands::parse(text) {
            Command::Off => Some(KvWrite::set(key, b"1".to_vec(), None)),
            Command::On => Some(KvWrite {
                key,
                op: crate::store::KvOp::Delete,
            }),
            _ => None,
        }
    }

    /// Whether a command's only effects are its reply and an `ON`/`OFF`
    /// flag: its delivery's mark can be written with round trip one.
    pub fn only_replies(text: &str) -> bool {
        matches!(
            commands::parse(text),
            Command::On
                | Command::Off
                | Command::Status
                | Command::Help
                | Command::Cases
                | Command::Who
                | Command::Unknown
        )
    }

    /// `ON` / `OFF`.
    async fn on_off(&self, call: &Call<'_>, off: bool) -> Result<CommandOutcome, StoreError> {
        let me = call.lawyer.id.as_str().to_owned();
        let key = keys::lawyer_off(&me);
        let store = &self.deps.store;
        // Round trip one wrote it with her index read (see `Begun`).
        if matches!(call.begun, Begun::Index(_)) {
        } else if off {
            let now = self.deps.clock.now_ms();
            store.put(None, &key, b"1".to_vec(), None, now).await?;
        } else {
            store.delete(None, &key).await?;
        }
        let mut set = self.off_set();
        if off {
            set.insert(me);
        } else {
            set.remove(&me);
        }
        self.set_off(set);
        let (name, text) = if off {
            ("off", call.texts.off.clone())
        } else {
            ("on", call.texts.on.clone())
        };
        self.tell(call, name, text).await?;
        Ok(CommandOutcome::Ok)
    }

    /// `STATUS`: her cases, `ok` accepted, `?` waiting on her (GSM-7 marks:
    /// one character outside it would halve what an SMS holds).
    async fn status_text(&self, call: &Call<'_>) -> Result<String, StoreError> {
        let me = call.lawyer.id.as_str();
        // Those waiting for her answer first, then hers; oldest first in
        // each; at most MAX_STATUS, so the answer stays one or two SMS.
        let mut mine: Vec<(bool, u64, String)> = Vec::new();
        for (_, rec, d) in self.cases_of(call).await? {
            if d.dispatch.accepted_by.as_deref() == Some(me) {
                mine.push((true, d.opened_at_ms, format!("{} ok", rec.named_code())));
            } else if lifecycle::pending_for(&d.dispatch, me) {
                mine.push((false, d.opened_at_ms, format!("{} ?", rec.named_code())));
            }
        }
        mine.sort();
        let more = mine.len().saturating_sub(MAX_STATUS);
        let mut list: Vec<String> = mine
            .into_iter()
            .take(MAX_STATUS)
            .map(|(_, _, s)| s)
            .collect();
        if more > 0 {
            list.push(format!("+{more}"));
        }
        Ok(if list.is_empty() {
            call.texts.status_none.clone()
        } else {
            render(&call.texts.status, &[("list", &list.join(", "))])
        })
    }

    /// The open cases offered to or held by the lawyer, from her index
    /// (`keys::lawyer_cases`), never every open case: as round trip one
    /// read it ([`Begun::Index`]), or one read of the index and one per
    /// case. An offer is added before it is sent (the outbox does not send
    /// it while the store cannot note it), and a case she accepted by its
    /// code without an offer when she accepts it. Members whose case is
    /// gone or closed are removed as they are read; one she declined or
    /// another took stays until its case closes (her index lives 30 days).
    pub(super) async fn cases_of(
        &self,
        call: &Call<'_>,
    ) -> Result<Vec<(u16, CaseRecord, CaseData)>, StoreError> {
        let me = call.lawyer.id.as_str();
        let indexed = match &call.begun {
            Begun::Index(index) => index.clone(),
            _ => {
                let now = self.deps.clock.now_ms();
                let key = keys::lawyer_cases(me);
                crate::store::read_index(self.deps.store.as_ref(), &key, now).await?
            }
        };
        Ok(indexed
            .into_iter()
            .filter_map(|(bucket, rec)| {
                let d = self.open_case(&rec)?;
                (d.dispatch.accepted_by.as_deref() == Some(me)
                    || lifecycle::pending_for(&d.dispatch, me))
                .then_some((bucket, rec, d))
            })
            .collect())
    }

    /// Every open case with its bucket, record and data.
    pub(super) async fn open_cases(&self) -> Result<Vec<(u16, CaseRecord, CaseData)>, StoreError> {
        let store = &self.deps.store;
        let mut out = Vec::new();
        for bucket in 0..BUCKETS {
            for id in store.case_ids(bucket, true).await? {
                if let Some(rec) = store.case(bucket, &id).await?
                    && let Some(data) = self.open_case(&rec)
                {
                    out.push((bucket, rec, data));
                }
            }
        }
        Ok(out)
    }

    /// Send a lawyer a message not tied to a case change.
    pub(super) async fn tell(
        &self,
        call: &Call<'_>,
        what: &str,
        text: String,
    ) -> Result<(), StoreError> {
        let lawyer = call.lawyer;
        let now = self.deps.clock.now_ms();
        match self.reply_budget().take(lawyer.id.as_str(), now) {
            super::replies::Spend::Send => {}
            spend => {
                self.deps.metrics.lawyer_replies_withheld.inc();
                if spend == super::replies::Spend::WithholdFirst {
                    tracing::warn!(
                        lawyer = %lawyer.id,
                        "replies to this lawyer's commands are withheld: more commands than anyone types (is someone sending as her number?)"
                    );
                }
                return Ok(());
            }
        }
        let privacy = &self.deps.privacy;
        let bucket = privacy.pseudonym(lawyer.phone.as_str()).bucket(BUCKETS);
        let msg = self.lawyer_msg(call.channel, lawyer, text, Purpose::Notice, None, now);
        let key = format!("tell:{}:{what}:{}", lawyer.id, call.delivery);
        let (queue, job) = outbox::job(privacy, bucket, &key, &msg, now)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.deps.store.schedule(bucket, queue, vec![job]).await?;
        self.deps.wake.outbox();
        Ok(())
    }

    /// Refresh the set of lawyers off call from the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn refresh_off(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now_ms();
        let lawyers: Vec<&str> = self.roster.lawyers().map(|l| l.id.as_str()).collect();
        let flags: Vec<String> = lawyers.iter().map(|l| keys::lawyer_off(l)).collect();
        let values = self.deps.store.get_many(None, &flags, now).await?;
        let off = lawyers
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_some())
            .map(|(l, _)| (*l).to_owned())
            .collect::<BTreeSet<String>>();
        self.set_off(off);
        Ok(())
    }
}
