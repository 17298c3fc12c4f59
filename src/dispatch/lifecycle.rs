//! The case lifecycle, as pure functions of a case's dispatch state, the
//! roster and an instant.
//!
//! opened → offered (to whom, at which level and pass) → accepted → closed.
//! A declined or unanswered offer moves the case up its city's escalation
//! chain (for example on call → next on call → whole team → coordinator),
//! each level with its wait. Who a level asks, at the instant it is reached:
//!
//! - `on_call`: the first lawyer on call *now* who is not off call; in a
//!   roster gap nobody. It never reaches ahead to the next shift.
//! - `next_on_call`: the first not off call and not yet asked in this pass
//!   of [`Roster::next_on_call`] — a second lawyer on call now, else whoever's
//!   shift starts next (in a gap, she is woken).
//! - `team`: everyone in the city's team not off call; `coordinator`: the
//!   coordinator, even when off call.
//!
//! A level that reaches nobody new (empty, off call, or already asked in
//! this pass) is skipped at once, without its wait. The chain repeats a
//! bounded number of times, then the coordinator is told the case is
//! unanswered — at once, when no level of any pass reaches anyone.
//!
//! Every function returns [`Action`]s — messages to send and timers to set —
//! for the caller to write atomically with the new state. Timers carry the
//! state's `seq`, so a timer made stale by a later change does nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::cover::{self, Covers};
use super::roster::{LawyerId, LevelKind, Roster};

/// Where a case is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a lawyer to accept.
    #[default]
    Open,
    /// A lawyer has it.
    Accepted,
    /// Finished (by a lawyer, or automatically after a limit).
    Closed,
}

/// One offer made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The lawyer's roster id.
    pub lawyer: String,
    /// When (ms).
    pub at_ms: u64,
    /// The chain level it was made at.
    pub level: u32,
    /// The pass through the chain.
    pub round: u32,
    /// Whether the lawyer declined it.
    #[serde(default)]
    pub declined: bool,
    /// Whether it was never delivered (the aggregator refused it for her
    /// number, or it failed past its retries): counted as declined, so the
    /// case moves on, but shown as undelivered, not as her answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undelivered: bool,
}

/// A case's dispatch state (stored, sealed, with the case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// Where the case is.
    pub status: Status,
    /// The current chain level.
    pub level: u32,
    /// The current pass through the chain.
    pub round: u32,
    /// Every offer made, in order.
    pub offers: Vec<Offer>,
    /// Who accepted.
    pub accepted_by: Option<String>,
    /// When (ms).
    pub accepted_at_ms: Option<u64>,
    /// When it was closed (ms).
    pub closed_at_ms: Option<u64>,
    /// Who closed it (`auto` for the automatic limit).
    pub closed_by: Option<String>,
    /// Generation of the escalation timer; bumped by every change that
    /// makes the pending one stale.
    pub seq: u32,
    /// Every pass of the chain went unanswered.
    pub exhausted: bool,
    /// The caller was sent the fallback-number message.
    pub unanswered_sent: bool,
    /// Personal data erased (retention).
    pub erased: bool,
    /// What happened next, as outcome ids from the lawyers' texts
    /// (`released`, `complaint`, …), given with `DONE 4821 <codes>`; empty
    /// when none was given. Categories only, never free text: kept after
    /// erasure for the working groups' report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<String>,
    /// When the outcome was last given or corrected (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_at_ms: Option<u64>,
}

/// The metric label of a case closed with no outcome given.
pub const NOT_GIVEN: &str = "not_given";

/// A timer to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Timer {
    /// Move up the chain if still unanswered and `seq` is current.
    Escalate {
        /// The generation it belongs to.
        seq: u32,
    },
    /// Tell the caller nobody has accepted yet.
    Unanswered,
    /// Close the case if still open (retention limit for open cases).
    AutoClose,
    /// Erase the case's personal data.
    Erase,
}

impl Timer {
    /// A short name (for job ids and logs).
    pub fn name(&self) -> String {
        match self {
            Timer::Escalate { seq } => format!("escalate-{seq}"),
            Timer::Unanswered => "unanswered".into(),
            Timer::AutoClose => "autoclose".into(),
            Timer::Erase => "erase".into(),
        }
    }
}

/// An answer to the lawyer who sent a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// You have it.
    Accepted,
    /// Declined; passed on.
    Declined,
    /// Closed (or its outcome corrected), with the outcome ids recorded.
    Closed(Vec<String>),
    /// (To a coordinator) closed, with the outcome ids recorded, though
    /// nobody had accepted it: counted as unanswered.
    ClosedUnaccepted(Vec<String>),
    /// Someone else has it.
    AlreadyTaken(String),
    /// You already have it.
    AlreadyYours,
    /// It was not offered to you.
    NotOffered,
    /// It is closed.
    IsClosed,
    /// (To a coordinator) offered to this lawyer, by roster id.
    Assigned(String),
    /// Only the city's coordinator may do that.
    NotCoordinator,
    /// (To a coordinator) this lawyer, by roster id, is the one whose
    /// number opened the case: it is not offered to her.
    OwnCase(String),
    /// (To a coordinator) this lawyer, by roster id, does not work in the
    /// case's city: it is not offered to her.
    NotInCity(String),
}

/// Something to do besides storing the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the offer to a lawyer.
    Offer(LawyerId),
    /// Tell a lawyer who was offered the case that someone took it.
    Taken {
        /// To whom.
        to: String,
        /// Who took it.
        by: String,
    },
    /// Tell a lawyer with an open offer of the case that it was closed
    /// before anyone accepted it.
    ClosedNotice {
        /// To whom.
        to: String,
        /// Who closed it.
        by: String,
    },
    /// Send the caller her discreet confirmation.
    Confirm,
    /// Send the caller the fallback-number message.
    Unanswered,
    /// Tell the coordinator the case went unanswered.
    CoordinatorAlert(LawyerId),
    /// Set a timer, due at `due_ms`.
    Timer(Timer, u64),
    /// Answer the lawyer who sent a command.
    Reply(String, Reply),
    /// The case moved to a level (for metrics).
    Escalated(LevelKind),
    /// The case was accepted this long after it opened (for metrics).
    AcceptedAfter(u64),
    /// Every pass went unanswered (for metrics).
    Exhausted,
    /// Outcome ids recorded on the case for the first time ([`NOT_GIVEN`]
    /// when it closed without one; for metrics).
    Outcomes(Vec<String>),
}

/// What the lifecycle needs to know about the world.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The roster.
    pub roster: &'a Roster,
    /// The case's city id.
    pub city: &'a str,
    /// Now (ms).
    pub now_ms: u64,
    /// When the case opened (ms).
    pub opened_at_ms: u64,
    /// Lawyers who said OFF.
    pub off: &'a BTreeSet<String>,
    /// Coordinators' covers in force (`COVER aida 18:00`).
    pub covers: &'a Covers,
    /// The lawyer whose number opened the case (a lawyer asking for help
    /// herself; her phone may be in police hands): she is never offered
    /// it, at any level or by `ASSIGN`, and cannot take, close or assign
    /// it as its coordinator. `None` for every other case.
    pub caller_lawyer: Option<&'a str>,
}

impl Ctx<'_> {
    /// Whether `lawyer` is the one whose number opened the case.
    pub fn is_caller(&self, lawyer: &str) -> bool {
        self.caller_lawyer == Some(lawyer)
    }

    /// Who a level of `kind` asks now: nobody off call (but the
    /// coordinator), nobody in `asked` (already asked in this pass), never
    /// the lawyer whose number opened the case (skipped as if off call).
    fn lawyers_at(&self, kind: LevelKind, asked: &BTreeSet<&str>) -> Vec<LawyerId> {
        let at = jiff::Timestamp::from_millisecond(i64::try_from(self.now_ms).unwrap_or(i64::MAX))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let available =
            |l: &LawyerId| !self.off.contains(l.as_str()) && !self.is_caller(l.as_str());
        let new = |l: &LawyerId| !asked.contains(l.as_str());
        match kind {
            // The first on call now who is not off; nobody if she was
            // asked already in this pass.
            LevelKind::OnCall => cover::on_call(self.roster, self.covers, self.city, at)
                .into_iter()
                .filter(available)
                .take(1)
                .filter(new)
                .collect(),
            // The next in line who has not been asked yet.
            LevelKind::NextOnCall => cover::next_on_call(self.roster, self.covers, self.city, at)
                .into_iter()
                .filter(|l| available(l) && new(l))
                .take(1)
                .collect(),
            LevelKind::Team => self
                .roster
                .team(self.city)
                .iter()
                .filter(|l| available(l) && new(l))
                .cloned()
                .collect(),
            // The coordinator is reached even when off call (the last
            // resort), but not about her own request.
            LevelKind::Coordinator => self
                .roster
                .coordinator(self.city)
                .into_iter()
                .filter(|l| new(l) && !self.is_caller(l.as_str()))
                .cloned()
                .collect(),
        }
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Open a case: offer it at the first level with anyone (in a roster gap
/// that is never `on_call`), and set its timers. When no level of any pass
/// reaches anyone, the chain is exhausted at once — the coordinator is
/// alerted — and the fallback-number timer is set all the same. A city the
/// roster does not know (her session began on a flow version a reload has
/// since replaced) has no chain and no coordinator: exhausted at once too
/// (counted, which pages), and she is given the fallback number after the
/// roster's shortest `unanswered_after`.
pub fn open(ctx: &Ctx<'_>, auto_close_ms: u64) -> (Dispatch, Vec<Action>) {
    let mut d = Dispatch::default();
    let mut actions = advance(&mut d, ctx, 0, 0);
    let unanswered_after = ctx.roster.chain(ctx.city).map_or_else(
        || ctx.roster.shortest_unanswered_after(),
        |c| c.unanswered_after,
    );
    actions.push(Action::Timer(
        Timer::Unanswered,
        ctx.opened_at_ms + ms(unanswered_after),
    ));
    actions.push(Action::Timer(
        Timer::AutoClose,
        ctx.opened_at_ms + auto_close_ms,
    ));
    (d, actions)
}

/// Offer at `level` of pass `round`, skipping levels with nobody new.
fn advance(d: &mut Dispatch, ctx: &Ctx<'_>, mut level: u32, mut round: u32) -> Vec<Action> {
    let Some(chain) = ctx.roster.chain(ctx.city) else {
        d.exhausted = true;
        return vec![Action::Exhausted];
    };
    let levels = chain.levels.len() as u32;
    let bound = (levels + 1) * (chain.repeats + 2);
    for _ in 0..bound {
        if round > chain.repeats {
            d.exhausted = true;
            d.seq += 1;
            let mut actions = vec![Action::Exhausted];
            // Not to the coordinator's own phone when she is the one who
            // asked: the exhausted count pages an operator all the same.
            if let Some(c) = ctx.roster.coordinator(ctx.city)
                && !ctx.is_caller(c.as_str())
            {
                actions.push(Action::CoordinatorAlert(c.clone()));
            }
            return actions;
        }
        if level >= levels {
            level = 0;
            round += 1;
            continue;
        }
        let spec = chain.levels[level as usize];
        let asked: BTreeSet<&str> = d
            .offers
            .iter()
            .filter(|o| o.round == round)
            .map(|o| o.lawyer.as_str())
            .collect();
        let new = ctx.lawyers_at(spec.kind, &asked);
        if new.is_empty() {
            level += 1;
            continue;
        }
        let mut actions = Vec::new();
        for l in new {
            d.offers.push(Offer {
                lawyer: l.as_str().to_owned(),
                at_ms: ctx.now_ms,
                level,
                round,
                declined: false,
                undelivered: false,
            });
            actions.push(Action::Offer(l));
        }
        if level > 0 || round > 0 {
            actions.push(Action::Escalated(spec.kind));
        }
        d.level = level;
        d.round = round;
        d.seq += 1;
        actions.push(Action::Timer(
            Timer::Escalate { seq: d.seq },
            ctx.now_ms + ms(spec.wait),
        ));
        return actions;
    }
    d.exhausted = true;
    vec![Action::Exhausted]
}

/// An escalation timer fired.
pub fn escalate(d: &mut Dispatch, ctx: &Ctx<'_>, seq: u32) -> Vec<Action> {
    if d.status != Status::Open || d.exhausted || seq != d.seq {
        return Vec::new();
    }
    advance(d, ctx, d.level + 1, d.round)
}

/// Whether `lawyer` has an offer of this case waiting for an answer.
pub fn pending_for(d: &Dispatch, lawyer: &str) -> bool {
    d.status == Status::Open && d.offers.iter().any(|o| o.lawyer == lawyer && !o.declined)
}

fn busy_reply(d: &Dispatch, lawyer: &str) -> Option<Reply> {
    match d.status {
        Status::Closed => Some(Reply::IsClosed),
        Status::Accepted if d.accepted_by.as_deref() == Some(lawyer) => Some(Reply::AlreadyYours),
        Status::Accepted => Some(Reply::AlreadyTaken(
            d.accepted_by.clone().unwrap_or_default(),
        )),
        Status::Open => None,
    }
}

/// Whether `lawyer` acts as the case's coordinator: its city's coordinator,
/// unless the case is her own request (then others handle it).
fn is_coordinator(ctx: &Ctx<'_>, lawyer: &str) -> bool {
    !ctx.is_caller(lawyer)
        && ctx
            .roster
            .coordinator(ctx.city)
            .is_some_and(|c| c.as_str() == lawyer)
}

/// A lawyer accepts.
pub fn accept(d: &mut Dispatch, ctx: &Ctx<'_>, lawyer: &str) -> Vec<Action> {
    if let Some(r) = busy_reply(d, lawyer) {
        return vec![Action::Reply(lawyer.to_owned(), r)];
    }
    let offered = d.offers.iter().any(|o| o.lawyer == lawyer);
    if !offered && !is_coordinator(ctx, lawyer) {
        return vec![Action::Reply(lawyer.to_owned(), Reply::NotOffered)];
    }
    d.status = Status::Accepted;
    d.accepted_by = Some(lawyer.to_owned());
    d.accepted_at_ms = Some(ctx.now_ms);
    d.seq += 1;
    let mut actions = vec![
        Action::Reply(lawyer.to_owned(), Reply::Accepted),
        Action::Confirm,
        Action::AcceptedAfter(ctx.now_ms.saturating_sub(ctx.opened_at_ms)),
    ];
    let mut told = BTreeSet::new();
    for o in &d.offers {
        if o.lawyer != lawyer && told.insert(o.lawyer.clone()) {
            actions.push(Action::Taken {
                to: o.lawyer.clone(),
                by: lawyer.to_owned(),
            });
        }
    }
    actions
}

/// An offer that cannot reach `lawyer`: a decline ([`decline`]), its
/// offers shown as undelivered rather than as her answer.
pub fn undelivered(d: &mut Dispatch, ctx: &Ctx<'_>, lawyer: &str) -> Vec<Action> {
    let open: Vec<usize> = d
        .offers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.lawyer == lawyer && !o.declined)
        .map(|(i, _)| i)
        .collect();
    let actions = decline(d, ctx, lawyer);
    for i in open {
        if let Some(o) = d.offers.get_mut(i)
            && o.declined
        {
            o.undelivered = true;
        }
    }
    actions
}

/// A lawyer declines: at once to the next level when nobody asked in this
/// pass is still considering it.
pub fn decline(d: &mut Dispatch, ctx: &Ctx<'_>, lawyer: &str) -> Vec<Action> {
    if let Some(r) = busy_reply(d, lawyer) {
        return vec![Action::Reply(lawyer.to_owned(), r)];
    }
    let mut found = false;
    for o in d
        .offers
        .iter_mut()
        .filter(|o| o.lawyer == lawyer && !o.declined)
    {
        o.declined = true;
        found = true;
    }
    if !found {
        return vec![Action::Reply(lawyer.to_owned(), Reply::NotOffered)];
    }
    let mut actions = vec![Action::Reply(lawyer.to_owned(), Reply::Declined)];
    let round = d.round;
    let waiting = d.offers.iter().any(|o| o.round == round && !o.declined);
    if !waiting && !d.exhausted {
        actions.extend(advance(d, ctx, d.level + 1, d.round));
    }
    actions
}

/// The city's coordinator offers an open case to `lawyer` directly: the
/// offer goes out at once, the lawyer may accept it like any offer, and the
/// current level's wait starts again (escalation goes on if she does not
/// answer). Anyone else is refused and nothing changes; so is an `ASSIGN`
/// to the lawyer whose number opened the case ([`Reply::OwnCase`]) or to
/// one who does not work in the case's city ([`Reply::NotInCity`]).
pub fn assign(
    d: &mut Dispatch,
    ctx: &Ctx<'_>,
    coordinator: &str,
    lawyer: &LawyerId,
) -> Vec<Action> {
    if !is_coordinator(ctx, coordinator) {
        return vec![Action::Reply(coordinator.to_owned(), Reply::NotCoordinator)];
    }
    if let Some(r) = busy_reply(d, coordinator) {
        return vec![Action::Reply(coordinator.to_owned(), r)];
    }
    if ctx.is_caller(lawyer.as_str()) {
        return vec![Action::Reply(
            coordinator.to_owned(),
            Reply::OwnCase(lawyer.as_str().to_owned()),
        )];
    }
    if !ctx.roster.works_in(lawyer.as_str(), ctx.city) {
        return vec![Action::Reply(
            coordinator.to_owned(),
            Reply::NotInCity(lawyer.as_str().to_owned()),
        )];
    }
    d.offers.push(Offer {
        lawyer: lawyer.as_str().to_owned(),
        at_ms: ctx.now_ms,
        level: d.level,
        round: d.round,
        declined: false,
        undelivered: false,
    });
    d.seq += 1;
    let mut actions = vec![
        Action::Offer(lawyer.clone()),
        Action::Reply(
            coordinator.to_owned(),
            Reply::Assigned(lawyer.as_str().to_owned()),
        ),
    ];
    let wait = ctx
        .roster
        .chain(ctx.city)
        .and_then(|c| c.levels.get(d.level as usize))
        .map(|l| ms(l.wait));
    if let (Some(wait), false) = (wait, d.exhausted) {
        actions.push(Action::Timer(
            Timer::Escalate { seq: d.seq },
            ctx.now_ms + wait,
        ));
    }
    actions
}

/// The lawyer who has the case (or the coordinator) closes it, with the
/// outcome ids she gave (`outcomes`, already checked against the texts;
/// empty: not given).
///
/// The coordinator may close a case nobody has accepted (a test, spam, or a
/// case handled by phone) — and a one-digit typo does the same — so such a
/// close never leaves a false promise or no trace: the woman, who was told
/// she will be called, is sent the fallback-number message (unless she was
/// already), the case counts as unanswered (which pages), every lawyer
/// still holding its offer is told it was closed, and the coordinator's
/// reply says nobody had accepted it.
///
/// `DONE` with outcomes on a case already closed corrects its outcome: from
/// the lawyer who closed it or had accepted it, or the city's coordinator,
/// until retention erases the case's personal data. After that the outcome
/// is final (`IsClosed`, nothing changes), and a bare `DONE` on a closed
/// case never clears one (`IsClosed`).
pub fn close(
    d: &mut Dispatch,
    ctx: &Ctx<'_>,
    lawyer: &str,
    retention_ms: u64,
    outcomes: &[String],
) -> Vec<Action> {
    if d.status == Status::Closed {
        let involved = d.closed_by.as_deref() == Some(lawyer)
            || d.accepted_by.as_deref() == Some(lawyer)
            || is_coordinator(ctx, lawyer);
        if outcomes.is_empty() || d.erased || !involved {
            return vec![Action::Reply(lawyer.to_owned(), Reply::IsClosed)];
        }
        let added: Vec<String> = outcomes
            .iter()
            .filter(|o| !d.outcomes.contains(o))
            .cloned()
            .collect();
        d.outcomes = outcomes.to_vec();
        d.outcome_at_ms = Some(ctx.now_ms);
        d.seq += 1;
        let mut actions = vec![Action::Reply(
            lawyer.to_owned(),
            Reply::Closed(d.outcomes.clone()),
        )];
        if !added.is_empty() {
            actions.push(Action::Outcomes(added));
        }
        return actions;
    }
    let allowed = d.accepted_by.as_deref() == Some(lawyer) || is_coordinator(ctx, lawyer);
    if !allowed {
        let reply = match &d.accepted_by {
            Some(by) => Reply::AlreadyTaken(by.clone()),
            None => Reply::NotOffered,
        };
        return vec![Action::Reply(lawyer.to_owned(), reply)];
    }
    let unaccepted = d.status == Status::Open;
    d.status = Status::Closed;
    d.closed_at_ms = Some(ctx.now_ms);
    d.closed_by = Some(lawyer.to_owned());
    d.outcomes = outcomes.to_vec();
    d.outcome_at_ms = (!outcomes.is_empty()).then_some(ctx.now_ms);
    d.seq += 1;
    let counted = if outcomes.is_empty() {
        vec![NOT_GIVEN.to_owned()]
    } else {
        outcomes.to_vec()
    };
    let reply = if unaccepted {
        Reply::ClosedUnaccepted(outcomes.to_vec())
    } else {
        Reply::Closed(outcomes.to_vec())
    };
    let mut actions = vec![
        Action::Reply(lawyer.to_owned(), reply),
        Action::Timer(Timer::Erase, ctx.now_ms + retention_ms),
        Action::Outcomes(counted),
    ];
    if unaccepted {
        if !d.unanswered_sent {
            d.unanswered_sent = true;
            actions.push(Action::Unanswered);
        }
        let mut told = BTreeSet::new();
        for o in d
            .offers
            .iter()
            .filter(|o| !o.declined && o.lawyer != lawyer)
        {
            if told.insert(o.lawyer.clone()) {
                actions.push(Action::ClosedNotice {
                    to: o.lawyer.clone(),
                    by: lawyer.to_owned(),
                });
            }
        }
    }
    actions
}

/// The caller's fallback-number timer fired.
pub fn unanswered(d: &mut Dispatch) -> Vec<Action> {
    if d.status != Status::Open || d.unanswered_sent {
        return Vec::new();
    }
    d.unanswered_sent = true;
    vec![Action::Unanswered]
}

/// The automatic-close timer fired.
pub fn auto_close(d: &mut Dispatch, ctx: &Ctx<'_>, retention_ms: u64) -> Vec<Action> {
    if d.status == Status::Closed {
        return Vec::new();
    }
    d.status = Status::Closed;
    d.closed_at_ms = Some(ctx.now_ms);
    d.closed_by = Some("auto".into());
    d.seq += 1;
    vec![
        Action::Timer(Timer::Erase, ctx.now_ms + retention_ms),
        Action::Outcomes(vec![NOT_GIVEN.to_owned()]),
    ]
}

#[cfg(test)]
pub(crate) mod tests;
