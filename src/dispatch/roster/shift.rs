//! Shift arithmetic: local wall-clock times, rotations and overrides.
//!
//! Shifts are laid out on the city's *wall clock*: shift `k` of a rotation
//! starts at `first + k × period` local time and ends `length` later, local
//! time. Only then is each boundary turned into an instant in the city's time
//! zone. So a 12-hour night shift from 20:00 ends at 08:00 local time even on
//! the night the clocks change (11 or 13 real hours), and every following
//! shift still starts at 20:00.
//!
//! A local time the clocks skip (spring forward) happens at the moment after
//! the gap; a local time that happens twice (fall back) counts as its first
//! occurrence. Every step is checked arithmetic: no instant jiff can represent
//! makes anything here panic.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

use super::LawyerId;

/// Seconds in an hour.
pub(super) const HOUR: i64 = 3_600;
/// Seconds in a day.
pub(super) const DAY: i64 = 86_400;
/// Seconds in a week: weekday patterns repeat after this much wall-clock time.
const WEEK: i64 = 7 * DAY;
/// A bitmask of every weekday (Monday is bit 0).
pub(super) const EVERY_DAY: u8 = 0x7f;

/// A local wall-clock date-time as seconds since 1970-01-01 00:00 *local*
/// (counted as if the zone were UTC). Differences are wall-clock durations.
pub(super) fn civil_secs(dt: DateTime) -> Option<i64> {
    Offset::UTC.to_timestamp(dt).ok().map(Timestamp::as_second)
}

/// The instant a local wall-clock time (in civil seconds) happens in `tz`.
fn instant(tz: &TimeZone, civil: i64) -> Option<Timestamp> {
    let dt = Offset::UTC.to_datetime(Timestamp::from_second(civil).ok()?);
    tz.to_timestamp(dt).ok()
}

/// An instant's local wall-clock time in `tz`, in civil seconds.
fn local(tz: &TimeZone, t: Timestamp) -> Option<i64> {
    t.as_second()
        .checked_add(i64::from(tz.to_offset(t).seconds()))
}

/// The weekday of a civil time, Monday = 0 (1970-01-01 was a Thursday).
fn weekday(civil: i64) -> u32 {
    // rem_euclid(7) is in 0..7, so the cast cannot truncate.
    (civil.div_euclid(DAY) + 3).rem_euclid(7) as u32
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One rotation: shifts following a fixed wall-clock pattern, taken in turn
/// by a list of lawyers.
#[derive(Debug, Clone)]
pub(super) struct Rotation {
    /// Civil seconds of the start of shift 0.
    pub first: i64,
    /// Wall-clock length of a shift, seconds (≤ `period`, > 0).
    pub length: i64,
    /// Wall-clock time from one shift's start to the next one's (> 0, whole hours).
    pub period: i64,
    /// Weekdays (of the shift's local start) on which a shift is held; a
    /// skipped shift does not use up a lawyer's turn.
    pub days: u8,
    /// The instant the rotation stops (shifts running then are cut short).
    pub end: Option<Timestamp>,
    /// Who takes the held shifts, in turn (never empty).
    pub lawyers: Vec<LawyerId>,
}

impl Rotation {
    /// Civil start of shift `k`.
    fn start_civil(&self, k: i64) -> Option<i64> {
        k.checked_mul(self.period)?.checked_add(self.first)
    }

    /// Whether shift `k` is held at all (its weekday is listed).
    fn held(&self, k: i64) -> bool {
        self.days == EVERY_DAY
            || self
                .start_civil(k)
                .is_some_and(|c| self.days & (1 << weekday(c)) != 0)
    }

    /// Shifts per weekday cycle: shift `k + cycle` falls on shift `k`'s weekday.
    fn cycle(&self) -> i64 {
        WEEK / gcd(self.period, WEEK)
    }

    /// The instants shift `k` covers, `[start, end)`, when it is held and
    /// not empty.
    fn bounds(&self, tz: &TimeZone, k: i64) -> Option<(Timestamp, Timestamp)> {
        if k < 0 || !self.held(k) {
            return None;
        }
        let s = self.start_civil(k)?;
        let start = instant(tz, s)?;
        let mut end = instant(tz, s.checked_add(self.length)?)?;
        if let Some(stop) = self.end {
            if start >= stop {
                return None;
            }
            end = end.min(stop);
        }
        (start < end).then_some((start, end))
    }

    /// The shift a wall-clock estimate puts `t` in (the true one is within a
    /// couple of shifts of it, whatever the clocks did).
    fn estimate(&self, tz: &TimeZone, t: Timestamp) -> Option<i64> {
        Some(
            local(tz, t)?
                .checked_sub(self.first)?
                .div_euclid(self.period),
        )
    }

    /// The held shift covering `t`, if any.
    pub fn shift_at(&self, tz: &TimeZone, t: Timestamp) -> Option<i64> {
        let k0 = self.estimate(tz, t)?;
        (k0.saturating_sub(2)..=k0.saturating_add(1))
            .rev()
            .find(|&k| self.bounds(tz, k).is_some_and(|(s, e)| s <= t && t < e))
    }

    /// The lawyer who takes held shift `k`.
    pub fn lawyer(&self, k: i64) -> Option<&LawyerId> {
        let n = i64::try_from(self.lawyers.len()).ok().filter(|n| *n > 0)?;
        let turn = usize::try_from(self.held_before(k).rem_euclid(n)).ok()?;
        self.lawyers.get(turn)
    }

    /// Whether any shift is ever held (the listed days can be missed
    /// altogether, e.g. weekly shifts that start on a day not listed).
    pub fn holds_any(&self) -> bool {
        (0..self.cycle()).any(|k| self.held(k))
    }

    /// How many shifts before shift `k` are held (each uses one turn).
    fn held_before(&self, k: i64) -> i64 {
        if self.days == EVERY_DAY || k <= 0 {
            return k.max(0);
        }
        let cycle = self.cycle();
        let per_cycle = (0..cycle).filter(|&i| self.held(i)).count() as i64;
        let partial = (0..k % cycle).filter(|&i| self.held(i)).count() as i64;
        (k / cycle)
            .saturating_mul(per_cycle)
            .saturating_add(partial)
    }

    /// The first instant after `t` at which a held shift starts or ends.
    pub fn next_boundary(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        let k0 = self.estimate(tz, t)?;
        let from = k0.saturating_sub(2).max(0);
        let to = k0.max(0).saturating_add(self.cycle() + 3);
        let mut best: Option<Timestamp> = None;
        for k in from..=to {
            let Some((s, e)) = self.bounds(tz, k) else {
                continue;
            };
            for b in [s, e] {
                if b > t && best.is_none_or(|x| b < x) {
                    best = Some(b);
                }
            }
            if s > t {
                break; // later shifts start later still
            }
        }
        best
    }
}

/// A dated replacement of whoever the rotations put on call.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// First instant covered.
    pub start: Timestamp,
    /// First instant no longer covered.
    pub end: Timestamp,
    /// Who is on call instead, primary first (never empty).
    pub lawyers: Vec<LawyerId>,
}

/// The instant of a local wall-clock date-time in `tz` (skipped times move
/// past the gap; repeated times take the first occurrence).
pub(super) fn local_instant(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    instant(tz, civil_secs(dt)?)
}
