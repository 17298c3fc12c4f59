//! A coordinator's SMS commands, carried out: `ASSIGN 4821 aida`,
//! `COVER aida 18:00`, `CASES`, `WHO`.
//!
//! The decisions are pure ([`lifecycle::assign`], [`cover::decide`],
//! [`cover::who`]); this file loads what they need, stores what they
//! decided and answers her in her language. `ASSIGN` and `COVER` come only
//! from a city's coordinator (anyone else is refused and nothing changes);
//! `CASES` and `WHO` answer a coordinator for the cities she coordinates
//! and any other lawyer for the cities she works in. Logs carry roster ids,
//! never a number.

use jiff::Timestamp;

use super::Dispatcher;
use super::commands::Until;
use super::cover::{self, Cover, CoverRefusal, Covers};
use super::lawyer::{Call, CommandOutcome};
use super::lifecycle::{self, Action, Reply};
use super::roster::LawyerId;
use crate::store::{StoreError, keys};
use crate::template::render;

/// At most this many codes per city in a `CASES` answer.
const MAX_LISTED: usize = 12;

impl Dispatcher {
    /// The cities a command of `call`'s sender is about.
    fn her_cities(&self, call: &Call<'_>) -> Vec<String> {
        let me = call.lawyer.id.as_str();
        let mine = cover::coordinated(&self.roster, me);
        if mine.is_empty() {
            call.lawyer.cities.clone()
        } else {
            mine.into_iter().map(str::to_owned).collect()
        }
    }

    fn lang<'a>(&self, call: &'a Call<'_>) -> &'a str {
        call.lawyer.languages.first().map_or("en", String::as_str)
    }

    fn name_of(&self, id: &str) -> String {
        self.roster
            .lawyer(id)
            .map_or_else(|| id.to_owned(), |l| l.name.clone())
    }

    /// `HH:MM` local to `city` (with the day, `DD.MM HH:MM`, when not today).
    fn local_time(&self, city: &str, at: Timestamp) -> String {
        let Some(c) = self.roster.city(city) else {
            return String::new();
        };
        let now = self.deps.clock.now().to_zoned(c.time_zone.clone());
        let t = at.to_zoned(c.time_zone.clone());
        if t.date() == now.date() {
            t.strftime("%H:%M").to_string()
        } else {
            t.strftime("%d.%m %H:%M").to_string()
        }
    }

    async fn refuse(&self, call: &Call<'_>) -> Result<CommandOutcome, StoreError> {
        self.tell(call, "notcoord", call.texts.not_coordinator.clone())
            .await?;
        Ok(CommandOutcome::Refused)
    }

    async fn no_lawyer(&self, call: &Call<'_>, typed: &str) -> Result<CommandOutcome, StoreError> {
        let text = render(&call.texts.no_lawyer, &[("name", typed)]);
        self.tell(call, "nolawyer", text).await?;
        Ok(CommandOutcome::Refused)
    }

    /// `ASSIGN 4821 aida`.
    pub(super) async fn assign(
        &self,
        call: &Call<'_>,
        code: &str,
        typed: &str,
    ) -> Result<CommandOutcome, StoreError> {
        let me = call.lawyer.id.as_str().to_owned();
        if cover::coordinated(&self.roster, &me).is_empty() {
            return self.refuse(call).await;
        }
        let Some(target) = cover::find_lawyer(&self.roster, typed) else {
            return self.no_lawyer(call, typed).await;
        };
        let target: LawyerId = target.id.clone();
        let (bucket, rec) = match self.by_code(call, code).await? {
            Ok(x) => x,
            Err(outcome) => return Ok(outcome),
        };
        let id = rec.id.clone();
        let actions = self
            .change_loaded_case(
                bucket,
                &id,
                Some(rec),
                None,
                call.channel,
                move |case, ctx| lifecycle::assign(&mut case.dispatch, ctx, &me, &target),
            )
            .await?
            .unwrap_or_default();
        let assigned = actions
            .iter()
            .any(|a| matches!(a, Action::Reply(_, Reply::Assigned(_))));
        if assigned {
            tracing::info!(coordinator = %call.lawyer.id, lawyer = %typed_id(&actions), "case assigned");
        }
        Ok(if assigned {
            CommandOutcome::Ok
        } else {
            CommandOutcome::Refused
        })
    }

    /// City names in her language, joined.
    fn city_names(&self, call: &Call<'_>, cities: &[String]) -> String {
        cities
            .iter()
            .map(|c| self.roster.city_name(c, self.lang(call)).unwrap_or(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `COVER aida 18:00`, or `COVER aida osh 18:00` naming the city.
    pub(super) async fn cover(
        &self,
        call: &Call<'_>,
        typed: &str,
        city: Option<&str>,
        until: Option<Until>,
    ) -> Result<CommandOutcome, StoreError> {
        let now = self.deps.clock.now();
        let me = call.lawyer.id.as_str();
        let c = match cover::decide(&self.roster, me, typed, city, until, now) {
            Ok(c) => c,
            Err(CoverRefusal::NotCoordinator) => return self.refuse(call).await,
            Err(CoverRefusal::NoLawyer) => return self.no_lawyer(call, typed).await,
            Err(CoverRefusal::BadUntil) => {
                self.tell(call, "coverbad", call.texts.cover_bad.clone())
                    .await?;
                return Ok(CommandOutcome::Refused);
            }
            Err(CoverRefusal::NotInCity { lawyer, cities }) => {
                tracing::info!(coordinator = %me, lawyer = %lawyer, "cover refused: she does not work in the city");
                let text = render(
                    &call.texts.not_in_city,
                    &[
                        ("name", &self.name_of(&lawyer)),
                        ("city", &self.city_names(call, &cities)),
                    ],
                );
                self.tell(call, "notincity", text).await?;
                return Ok(CommandOutcome::Refused);
            }
            Err(CoverRefusal::WhichCity { lawyer, cities }) => {
                let text = render(
                    &call.texts.cover_city,
                    &[
                        ("name", &lawyer),
                        ("list", &self.city_names(call, &cities)),
                        ("city", cities.first().map_or("", String::as_str)),
                    ],
                );
                self.tell(call, "covercity", text).await?;
                return Ok(CommandOutcome::Refused);
            }
        };
        let now_ms = self.deps.clock.now_ms();
        let value = serde_json::to_vec(&c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let ttl = c.until_ms.saturating_sub(now_ms).max(1);
        self.deps
            .store
            .put(None, &keys::cover(&c.city), value, Some(ttl), now_ms)
            .await?;
        let mut covers = self.covers();
        covers.insert(c.city.clone(), c.clone());
        self.set_covers(covers);
        tracing::info!(coordinator = %me, lawyer = %c.lawyer, city = %c.city, hours = ttl / 3_600_000, "cover set");
        let until_ts = Timestamp::from_millisecond(i64::try_from(c.until_ms).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        let city = self
            .roster
            .city_name(&c.city, self.lang(call))
            .unwrap_or(&c.city);
        let text = render(
            &call.texts.covered,
            &[
                ("name", &self.name_of(&c.lawyer)),
                ("city", city),
                ("until", &self.local_time(&c.city, until_ts)),
            ],
        );
        self.tell(call, "covered", text).await?;
        Ok(CommandOutcome::Ok)
    }

    /// `CASES`: open codes in her cities, `ok Name` accepted, `?` waiting
    /// (GSM-7 marks, as `STATUS`).
    pub(super) async fn cases(&self, call: &Call<'_>) -> Result<CommandOutcome, StoreError> {
        let open = self.open_cases().await?;
        for city in self.her_cities(call) {
            // Those nobody has accepted first, then the rest; oldest first
            // in each: what needs her now is never cut off by the limit.
            let mut cases: Vec<_> = open
                .iter()
                .filter(|(_, _, d)| self.dispatch_city(d) == city)
                .collect();
            cases.sort_by_key(|(_, _, d)| (d.dispatch.accepted_by.is_some(), d.opened_at_ms));
            let mut list: Vec<String> = cases
                .into_iter()
                .map(|(_, rec, d)| match &d.dispatch.accepted_by {
                    Some(by) => format!("{} ok {}", rec.named_code(), self.name_of(by)),
                    None => format!("{} ?", rec.named_code()),
                })
                .collect();
            let more = list.len().saturating_sub(MAX_LISTED);
            list.truncate(MAX_LISTED);
            if more > 0 {
                list.push(format!("+{more}"));
            }
            let name = self
                .roster
                .city_name(&city, self.lang(call))
                .unwrap_or(&city);
            let text = if list.is_empty() {
                render(&call.texts.cases_none, &[("city", name)])
            } else {
                render(
                    &call.texts.cases,
                    &[("city", name), ("list", &list.join(", "))],
                )
            };
            self.tell(call, &format!("cases-{city}"), text).await?;
        }
        Ok(CommandOutcome::Ok)
    }

    /// `WHO`: on call now (with a cover's end) and next, per city.
    pub(super) async fn who(&self, call: &Call<'_>) -> Result<CommandOutcome, StoreError> {
        let now = self.deps.clock.now();
        let covers = self.covers();
        for city in self.her_cities(call) {
            let text = self.who_text(call, &covers, &city, now);
            self.tell(call, &format!("who-{city}"), text).await?;
        }
        Ok(CommandOutcome::Ok)
    }

    fn who_text(&self, call: &Call<'_>, covers: &Covers, city: &str, now: Timestamp) -> String {
        let w = cover::who(&self.roster, covers, city, now);
        let t = call.texts;
        // A lawyer who sent OFF is skipped by every offer: the coordinator
        // must not read her as on call (newcomer audit). Marked with the
        // command she sent, the same word in every language.
        let off = self.off_set();
        let names = |ids: &[LawyerId]| {
            ids.iter()
                .map(|l| {
                    let name = self.name_of(l.as_str());
                    if off.contains(l.as_str()) {
                        format!("{name} (OFF)")
                    } else {
                        name.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut on = if w.now.is_empty() {
            t.nobody.clone()
        } else {
            names(&w.now)
        };
        if let Some(end) = w.cover_until {
            on.push_str(&format!(" (–{})", self.local_time(city, end)));
        }
        let next = match (w.next.is_empty(), w.next_from) {
            (false, Some(from)) => format!("{} {}", names(&w.next), self.local_time(city, from)),
            _ => t.nobody.clone(),
        };
        let name = self.roster.city_name(city, self.lang(call)).unwrap_or(city);
        render(&t.who, &[("city", name), ("name", &on), ("list", &next)])
    }

    /// Refresh the covers in force from the store.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn refresh_covers(&self) -> Result<(), StoreError> {
        let now = self.deps.clock.now_ms();
        let mut covers = Covers::new();
        let cities = self.roster.city_ids();
        let names: Vec<String> = cities.iter().map(|c| keys::cover(c)).collect();
        let values = self.deps.store.get_many(None, &names, now).await?;
        for (city, raw) in cities.into_iter().zip(values) {
            let Some(raw) = raw else {
                continue;
            };
            match serde_json::from_slice::<Cover>(&raw) {
                Ok(c) if c.until_ms > now => {
                    covers.insert(city.to_owned(), c);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(city, error = %e, "unreadable cover ignored"),
            }
        }
        self.set_covers(covers);
        Ok(())
    }
}

/// The roster id an `ASSIGN` offered the case to (for the log).
fn typed_id(actions: &[Action]) -> &str {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Offer(l) => Some(l.as_str()),
            _ => None,
        })
        .unwrap_or("")
}
