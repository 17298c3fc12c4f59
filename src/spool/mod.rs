//! The durable spool: cases completed while the store was down.
//!
//! A woman who was told her request was received must reach a lawyer, even
//! if Redis failed at that moment. Such a case is appended to a local file
//! (one JSON line per case, `fsync`ed before she is answered) and replayed
//! into the store when it answers again. Replay is idempotent — a case id
//! already in the store is left alone — so a crash between recording and
//! removing an entry replays it again harmlessly: each case lands once.
//!
//! **One file per instance.** Each instance appends only to its own
//! `cases-<instance>.jsonl` in `store.spool_dir` and holds an exclusive lock
//! on `cases-<instance>.lock` for as long as it runs (`files`). Appends and
//! the rewrite after a replay happen under that lock and this process's
//! mutex, so two instances sharing a folder never lose each other's
//! entries. Any instance also replays the spools nobody holds — a crashed
//! or stopped instance's, and the `cases.jsonl` of earlier versions — and
//! removes them once empty.
//!
//! **Codes shown offline.** An entry records the code its caller was shown
//! (a code leased for outages, see [`crate::codes`]) and the instance that
//! leased it; replay records the case with exactly that code
//! ([`Store::record_leased_case`]); if the case was recorded meanwhile
//! under another code (a frozen store ran the commit that timed out), the
//! shown code becomes its alias: both find the case, and every message that
//! names it names both (`8516/2356`, [`crate::store::named_code`]). That is
//! logged (the case id, never a code) and counted
//! (`hotline_spool_codes_aliased_total`). Entries without a code (SMS, whose
//! code goes out with the case; no leased code was ready; earlier
//! versions) take the first free candidate.
//!
//! **Cases the store may have taken back.** Redis acknowledges a write
//! before its replica has it, and before it reaches the disk: a master
//! that dies in that instant, or a Redis restarted from an older snapshot
//! (or empty), loses cases their callers were already given a code for.
//! So the spool also keeps, in memory, every case this instance recorded
//! in the last [`RECHECK_WINDOW_MS`] (at most [`RECHECK_MAX`]), with the
//! code it got ([`Spool::remember`]). Whenever the store falters in a way
//! that may mean such a loss ([`Store::disturbances`]: a dropped
//! connection, a timeout, a failover, a loss the store's watch found),
//! those cases are written to the spool file ([`Spool::recheck`]) and
//! replayed like the others: a case still in the store is left alone
//! (counted as rechecked), a missing one is recorded again with the code
//! its caller was given first among its candidates (taking it back from an
//! outage-code lease if need be), its offer and timers
//! with it — logged as an error and counted
//! (`hotline_cases_restored_total`). A case recorded meanwhile by another
//! instance is never doubled: case ids are deterministic. What this does
//! not cover: a loss this instance never sees falter (it was not talking
//! to the failed node within the window), and the lawyers' answers and
//! other updates the store took back with the case. Rechecks are at least
//! [`RECHECK_GAP`] apart, so a store that keeps timing out is not sent
//! every recent case each time; and this instance gives no new case, and
//! no case recorded again, a code of another of its recent cases
//! ([`Spool::spare_codes`]): once the store lost them, those codes look
//! free.
//!
//! **Across a restart.** The recent cases are also written to
//! `<stem>.recent.jsonl` ([`Spool::save_recent`], by the spool worker every
//! half second, `fsync`ed; rewritten without the cases older than the
//! window at least every [`RECENT_COMPACT_MS`]), so a restart loses at
//! most the last half second of them. A restarted instance has a new
//! name: its predecessor's files are an orphan's, and whichever instance
//! takes the orphan's lock first adopts its recent cases (those within the
//! window, into its own memory and file) and rechecks them at once — it
//! cannot know whether the store faltered while nobody watched. So a
//! failover that took cases back just before, or while, their instance
//! restarted no longer loses them.
//!
//! The files hold only sealed case data (see [`crate::privacy`]) and
//! pseudonymous ids: no number or location in clear. Case ids are
//! deterministic per session, so a retried request appends nothing twice.

mod files;
mod inbox;

pub use inbox::{Inbound, InboxReplayed};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::store::{CodeLease, Job, NewCase, Queue, Store, StoreError};

/// One spooled case: one line of a spool file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    bucket: u16,
    id: String,
    codes: Vec<String>,
    data: String,
    jobs: Vec<(String, String, u64, String)>,
    spooled_at_ms: u64,
    /// The code the caller was shown (leased by `holder`); absent when she
    /// was shown none, and in entries of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// The instance that leased `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    /// The code the store gave the case when it was recorded: an entry
    /// rechecked after the store faltered ([`Spool::recheck`]), first among
    /// `codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorded: Option<String>,
    /// A rechecked case closed since (on this instance): kept only so its
    /// code is spared, never recorded again ([`Spool::case_settled`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    closed: bool,
}

impl Entry {
    fn from_case(bucket: u16, case: &NewCase, shown: Option<&CodeLease>, now_ms: u64) -> Self {
        Entry {
            bucket,
            id: case.id.clone(),
            codes: case.code_candidates.clone(),
            data: B64.encode(&case.data),
            jobs: case
                .jobs
                .iter()
                .map(|(q, j)| {
                    (
                        q.as_str().to_owned(),
                        j.id.clone(),
                        j.due_ms,
                        B64.encode(&j.payload),
                    )
                })
                .collect(),
            spooled_at_ms: now_ms,
            code: shown.map(|l| l.code.clone()),
            holder: shown.map(|l| l.holder.clone()),
            recorded: None,
            closed: false,
        }
    }

    /// A case the store recorded with `code`, to recheck: `code` first
    /// among its candidates.
    fn recorded(bucket: u16, case: &NewCase, code: &str, now_ms: u64) -> Self {
        let mut e = Entry::from_case(bucket, case, None, now_ms);
        e.codes.retain(|c| c != code);
        e.codes.insert(0, code.to_owned());
        e.recorded = Some(code.to_owned());
        e
    }

    fn to_case(&self) -> Option<NewCase> {
        let jobs = self
            .jobs
            .iter()
            .map(|(q, id, due, p)| {
                let queue = if q == "outbox" {
                    Queue::Outbox
                } else {
                    Queue::Timers
                };
                Some((
                    queue,
                    Job {
                        id: id.clone(),
                        due_ms: *due,
                        payload: B64.decode(p).ok()?,
                    },
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(NewCase {
            id: self.id.clone(),
            code_candidates: self.codes.clone(),
            data: B64.decode(&self.data).ok()?,
            jobs,
        })
    }

    fn lease(&self) -> Option<CodeLease> {
        Some(CodeLease {
            code: self.code.clone()?,
            holder: self.holder.clone()?,
        })
    }
}

/// What [`Spool::append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The case was added (and `fsync`ed).
    Added,
    /// The case was spooled before (a retried request): nothing was added.
    /// The code its caller was shown then, if any.
    Already {
        /// The code in the earlier entry.
        code: Option<String>,
    },
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Cases recorded (or found already recorded) and removed from a spool.
    pub recorded: usize,
    /// Of those, cases recorded with another code than the one shown (a
    /// lost lease; logged as an error).
    pub codes_changed: usize,
    /// Of those, cases recorded meanwhile under another code whose shown
    /// code became their alias (both name the case; logged).
    pub codes_aliased: usize,
    /// Of those, cases the store had acknowledged and then lost, recorded
    /// again ([`Spool::recheck`]; logged as an error).
    pub restored: usize,
    /// Cases rechecked after the store faltered and found where they were
    /// (not in `recorded`).
    pub rechecked: usize,
}

impl std::ops::AddAssign for Replayed {
    fn add_assign(&mut self, o: Replayed) {
        self.recorded += o.recorded;
        self.codes_changed += o.codes_changed;
        self.codes_aliased += o.codes_aliased;
        self.restored += o.restored;
        self.rechecked += o.rechecked;
    }
}

/// How long a case this instance recorded is kept in memory to be
/// rechecked if the store falters ([`Spool::recheck`]): far longer than a
/// Redis Cluster takes to notice a master is gone and promote its replica
/// (`cluster-node-timeout`, 15 s by default, plus the election) and than
/// `appendfsync everysec`'s window; as long as RDB snapshots are apart at
/// low traffic (`save 3600 1`), so a Redis (or a replica) restarted from
/// its last snapshot is covered too.
pub const RECHECK_WINDOW_MS: u64 = 3_600_000;

/// Rechecks are at least this far apart: a store that keeps faltering
/// (timeouts under load) is not sent every recent case again each time,
/// which would load it more. A fault within the gap is rechecked when it
/// has passed.
pub const RECHECK_GAP: std::time::Duration = std::time::Duration::from_secs(10);

/// At most this many cases are kept to recheck (the oldest go first): a
/// few megabytes.
pub const RECHECK_MAX: usize = 4096;

/// The recent file is rewritten without the cases past the window once its
/// oldest is this much past it (or once it holds twice the lines it needs):
/// steady traffic rewrites it every few minutes, not every save, and no
/// case stays in it much longer than the window.
pub const RECENT_COMPACT_MS: u64 = 300_000;

impl Recent {
    /// Drop `gone`'s code from [`Recent::codes`].
    fn forget(&mut self, gone: &Entry) {
        if let Some(code) = &gone.recorded
            && self.codes.get(code).is_some_and(|id| *id == gone.id)
        {
            self.codes.remove(code);
        }
    }
}

/// Cases recorded lately, to recheck if the store falters.
#[derive(Debug, Default)]
struct Recent {
    entries: VecDeque<Entry>,
    /// The code each of `entries` was recorded with, and its case id: a
    /// code the store may have lost with its case is not given to another
    /// case by this instance ([`Spool::spare_codes`]).
    codes: std::collections::HashMap<String, String>,
    /// The code each spooled case waiting to be recorded was shown with
    /// (its leased code), and its case id: until the case is recorded,
    /// the code's key in a store that lost its data (a Redis restarted
    /// empty) looks free, and a new case must not take it
    /// ([`Spool::spare_codes`]). Filled by [`Spool::append`] and by every
    /// replay's read of a spool file (this instance's or an orphan's);
    /// emptied as each case is recorded.
    shown: std::collections::HashMap<String, String>,
    /// [`Store::disturbances`] as of the last [`Spool::recheck`]; `None`
    /// before the first.
    seen: Option<u64>,
    /// The last move failed (the disk refused), or was deferred by
    /// [`RECHECK_GAP`], or cases were taken over: move them again.
    retry: bool,
    /// The store faltered since the last move (`seen` grew): what the
    /// next move is reported as.
    faltered: bool,
    /// When the last recheck wrote the cases out.
    last: Option<std::time::Instant>,
    /// [`RECHECK_GAP`] (0 in unit tests).
    gap: std::time::Duration,
    /// Entries not yet written to the recent file ([`Spool::save_recent`]).
    unsaved: VecDeque<Entry>,
    /// Lines in the recent file, and the oldest entry's time in it.
    file_lines: usize,
    file_oldest: Option<u64>,
    /// The last write failed: rewrite the whole file next time.
    file_broken: bool,
}

/// The spool of one gateway instance.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// `cases-<instance>`.
    stem: String,
    /// The open, locked `<stem>.lock`: while it is open no other instance
    /// writes or replays this spool.
    _held: std::fs::File,
    /// Serialises this process's appends and replays of its own file.
    lock: tokio::sync::Mutex<()>,
    pending: AtomicUsize,
    /// Of those, cases completed while the store was down (not rechecks of
    /// cases the store had recorded).
    waiting: AtomicUsize,
    /// Cases recorded lately ([`Spool::remember`]). A std lock: held only
    /// to push or take entries, never across an `.await`.
    recent: std::sync::Mutex<Recent>,
    /// Inbound SMS kept while the store was down (`inbox`).
    inbox: AtomicUsize,
    /// Serialises this process's reads and writes of its inbox file.
    inbox_lock: tokio::sync::Mutex<()>,
    /// Who handles kept messages once the store is back.
    inbound: std::sync::OnceLock<std::sync::Weak<dyn Inbound>>,
}

/// Run blocking file work off the async threads; a panic in it is an I/O
/// error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

fn io_unavailable(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

impl Spool {
    /// Open (creating the folder, private to this user) the spool of the
    /// instance `instance` in `dir`, and lock it.
    ///
    /// # Errors
    /// When the folder cannot be created, the file read, or another live
    /// process holds this instance's spool.
    pub fn open(dir: &Path, instance: &str) -> std::io::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let stem = format!("cases-{instance}");
        let held = files::try_lock(dir, &stem)?.ok_or_else(|| {
            std::io::Error::other(format!("the spool {stem} is held by another process"))
        })?;
        let entries = files::read_entries(&files::data_path(dir, &stem))?;
        let pending = entries.len();
        let waiting = entries.iter().filter(|e| e.recorded.is_none()).count();
        let inbox = inbox::count(&files::inbox_path(dir, &stem))?;
        Ok(Arc::new(Spool {
            dir: dir.to_path_buf(),
            stem,
            _held: held,
            lock: tokio::sync::Mutex::new(()),
            pending: AtomicUsize::new(pending),
            waiting: AtomicUsize::new(waiting),
            inbox: AtomicUsize::new(inbox),
            inbox_lock: tokio::sync::Mutex::new(()),
            inbound: std::sync::OnceLock::new(),
            recent: std::sync::Mutex::new(Recent {
                gap: RECHECK_GAP,
                ..Recent::default()
            }),
        }))
    }

    /// This instance's spool file.
    pub fn path(&self) -> PathBuf {
        files::data_path(&self.dir, &self.stem)
    }

    /// Cases waiting in this instance's own file.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Cases completed while the store was down that wait in this
    /// instance's file (`hotline_spool_pending`): not the cases it
    /// rechecks after the store faltered ([`Spool::recheck`]), which are
    /// in the store as a rule.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Append a case, with the code its caller is shown, and `fsync` it. A
    /// case id already spooled is not appended again (a retried request).
    ///
    /// # Errors
    /// When the disk refuses; the caller must then not claim the case was
    /// received.
    pub async fn append(
        &self,
        bucket: u16,
        case: &NewCase,
        shown: Option<&CodeLease>,
        now_ms: u64,
    ) -> std::io::Result<Appended> {
        let _guard = self.lock.lock().await;
        let path = self.path();
        let entry = Entry::from_case(bucket, case, shown, now_ms);
        let appended = blocking(move || {
            if let Some(e) = files::read_entries(&path)?
                .into_iter()
                .find(|e| e.id == entry.id)
            {
                return Ok(Appended::Already { code: e.code });
            }
            files::append_entries(&path, std::slice::from_ref(&entry))?;
            Ok(Appended::Added)
        })
        .await?;
        if appended == Appended::Added {
            self.pending.fetch_add(1, Ordering::SeqCst);
            self.waiting.fetch_add(1, Ordering::SeqCst);
            if let Some(lease) = shown {
                self.recent()
                    .shown
                    .insert(lease.code.clone(), case.id.clone());
            }
        }
        Ok(appended)
    }

    /// Keep a case the store just recorded with `code` (its jobs included:
    /// an SMS screen queued with it) in memory for [`RECHECK_WINDOW_MS`],
    /// to record again if the store turns out to have lost it.
    pub fn remember(&self, bucket: u16, case: &NewCase, code: &str, now_ms: u64) {
        let entry = Entry::recorded(bucket, case, code, now_ms);
        let mut recent = self.recent();
        let oldest = now_ms.saturating_sub(RECHECK_WINDOW_MS);
        while recent
            .entries
            .front()
            .is_some_and(|e| e.spooled_at_ms < oldest)
            || recent.entries.len() >= RECHECK_MAX
        {
            if let Some(gone) = recent.entries.pop_front() {
                recent.forget(&gone);
            }
        }
        recent.codes.insert(code.to_owned(), case.id.clone());
        if recent.unsaved.len() >= RECHECK_MAX {
            recent.unsaved.pop_front();
        }
        recent.unsaved.push_back(entry.clone());
        recent.entries.push_back(entry);
    }

    /// A case this instance stored accepted or closed: bring the copy kept
    /// to recheck up to date, so that a store that loses it gets it back
    /// as it stands — accepted, with no offer to send again and no
    /// "nobody reached you" for her; closed, not at all (kept only to spare
    /// its code). A case another instance recorded is taken in (accepted
    /// only), opened within the window, without an alias. Written to the
    /// recent file at the next [`Spool::save_recent`]; its later line wins.
    fn settle(&self, case: &crate::deps::Settled<'_>) {
        let crate::deps::Settled {
            bucket,
            id,
            code,
            aliased,
            data,
            timers,
            closed,
            opened_ms,
            now_ms,
        } = *case;
        let mut recent = self.recent();
        let updated = match recent.entries.iter_mut().rev().find(|e| e.id == id) {
            Some(e) => {
                e.closed |= closed;
                e.data = B64.encode(data);
                // No message is sent again for it; its timers are the
                // ones it had (a stale escalation does nothing to an
                // accepted case) and those this change made.
                e.jobs.retain(|(q, jid, _, _)| {
                    q != Queue::Outbox.as_str() && !timers.iter().any(|t| t.id == *jid)
                });
                e.jobs.extend(timers.iter().map(|t| {
                    (
                        Queue::Timers.as_str().to_owned(),
                        t.id.clone(),
                        t.due_ms,
                        B64.encode(&t.payload),
                    )
                }));
                e.clone()
            }
            None if closed || aliased || opened_ms < now_ms.saturating_sub(RECHECK_WINDOW_MS) => {
                return;
            }
            None => {
                let e = Entry {
                    bucket,
                    id: id.to_owned(),
                    codes: vec![code.to_owned()],
                    data: B64.encode(data),
                    jobs: timers
                        .iter()
                        .map(|t| {
                            (
                                Queue::Timers.as_str().to_owned(),
                                t.id.clone(),
                                t.due_ms,
                                B64.encode(&t.payload),
                            )
                        })
                        .collect(),
                    spooled_at_ms: opened_ms,
                    code: None,
                    holder: None,
                    recorded: Some(code.to_owned()),
                    closed: false,
                };
                // In order of recording, as the window expects.
                let at = recent
                    .entries
                    .partition_point(|k| k.spooled_at_ms <= opened_ms);
                recent.entries.insert(at, e.clone());
                while recent.entries.len() > RECHECK_MAX {
                    if let Some(gone) = recent.entries.pop_front() {
                        recent.forget(&gone);
                    }
                }
                recent.codes.insert(code.to_owned(), id.to_owned());
                e
            }
        };
        if recent.unsaved.len() >= RECHECK_MAX {
            recent.unsaved.pop_front();
        }
        recent.unsaved.push_back(updated);
    }

    /// Take in cases another (dead) instance recorded lately: kept like
    /// this instance's own, written to this instance's recent file by the
    /// next [`Spool::save_recent`], and rechecked at the next
    /// [`Spool::recheck`] whether or not the store faltered. Those past
    /// the window, or already kept, are left out; the oldest go first past
    /// [`RECHECK_MAX`]. Returns how many were taken in.
    fn adopt(&self, adopted: Vec<Entry>, now_ms: u64) -> usize {
        let oldest = now_ms.saturating_sub(RECHECK_WINDOW_MS);
        // A case settled later has a later line in the file: the last of
        // each id is the case as it stood.
        let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, e) in adopted.iter().enumerate() {
            last.insert(e.id.clone(), i);
        }
        let mut adopted: Vec<Entry> = adopted
            .into_iter()
            .enumerate()
            .filter(|(i, e)| last.get(&e.id) == Some(i))
            .map(|(_, e)| e)
            .collect();
        let mut recent = self.recent();
        adopted.retain(|e| {
            e.spooled_at_ms >= oldest
                && e.recorded.is_some()
                && !recent.entries.iter().any(|k| k.id == e.id)
        });
        if adopted.is_empty() {
            return 0;
        }
        let n = adopted.len();
        let mut all: Vec<Entry> = recent.entries.drain(..).chain(adopted.clone()).collect();
        all.sort_by_key(|e| e.spooled_at_ms);
        let excess = all.len().saturating_sub(RECHECK_MAX);
        let all = all.split_off(excess);
        recent.codes.clear();
        for e in &all {
            if let Some(code) = &e.recorded {
                recent.codes.insert(code.clone(), e.id.clone());
            }
        }
        recent.entries = all.into();
        for e in adopted {
            if recent.unsaved.len() >= RECHECK_MAX {
                recent.unsaved.pop_front();
            }
            recent.unsaved.push_back(e);
        }
        recent.retry = true;
        n
    }

    /// Write the cases remembered since the last call to this instance's
    /// recent file, `fsync`ed; rewrite the file without the cases past the
    /// window when they have piled up ([`RECENT_COMPACT_MS`]), or remove it
    /// when nothing is left. Returns how many cases were written.
    ///
    /// # Errors
    /// When the disk refuses: they are written at the next call.
    pub async fn save_recent(&self, now_ms: u64) -> std::io::Result<usize> {
        let oldest = now_ms.saturating_sub(RECHECK_WINDOW_MS);
        let (new, rewrite) = {
            let mut recent = self.recent();
            while recent
                .entries
                .front()
                .is_some_and(|e| e.spooled_at_ms < oldest)
            {
                if let Some(gone) = recent.entries.pop_front() {
                    recent.forget(&gone);
                }
            }
            recent.unsaved.retain(|e| e.spooled_at_ms >= oldest);
            let new: Vec<Entry> = recent.unsaved.drain(..).collect();
            let stale = recent
                .file_oldest
                .is_some_and(|t| t.saturating_add(RECHECK_WINDOW_MS + RECENT_COMPACT_MS) < now_ms);
            let bloated = recent.file_lines + new.len() > 2 * recent.entries.len() + 1024;
            let rewrite =
                (stale || bloated || (recent.entries.is_empty() && recent.file_lines > 0))
                    .then(|| recent.entries.iter().cloned().collect::<Vec<Entry>>());
            if new.is_empty() && rewrite.is_none() {
                return Ok(0);
            }
            (new, rewrite)
        };
        let _guard = self.lock.lock().await;
        let path = files::recent_path(&self.dir, &self.stem);
        let n = new.len();
        let first_new = new.first().map(|e| e.spooled_at_ms);
        let written = match rewrite {
            Some(all) => {
                let first = all.first().map(|e| e.spooled_at_ms);
                let lines = all.len();
                let dir = self.dir.clone();
                let stem = self.stem.clone();
                blocking(move || {
                    if all.is_empty() {
                        files::remove_recent(&dir, &stem)
                    } else {
                        files::write_entries(&path, &all)
                    }
                })
                .await
                .map(|()| (lines, first, true))
            }
            None => blocking(move || files::append_entries(&path, &new))
                .await
                .map(|()| (n, first_new, false)),
        };
        let mut recent = self.recent();
        match written {
            Ok((lines, first, rewritten)) => {
                recent.file_broken = false;
                if rewritten {
                    recent.file_lines = lines;
                    recent.file_oldest = first;
                } else {
                    recent.file_lines += lines;
                    recent.file_oldest = recent.file_oldest.or(first);
                }
                Ok(n)
            }
            Err(e) => {
                // Written at the next call: a rewrite takes them all.
                recent.file_broken = true;
                Err(e)
            }
        }
    }

    /// Leave out of `candidates` (a new case's codes, `case_id`'s) every
    /// code this instance recorded another case with in the last
    /// [`RECHECK_WINDOW_MS`]. In the store those codes are taken anyway;
    /// once a failover or an older snapshot has taken a case back, its
    /// code looks free there, and a new case given it would leave the
    /// woman first shown it holding a code that opens another's case when
    /// hers is recorded again. Nor any code a case waiting in a spool here
    /// was shown with while the store was down (`Recent::shown`): a
    /// Redis restarted empty has lost its lease too. (Only what this
    /// instance knows: another instance's lost codes are not known here.)
    pub fn spare_codes(&self, case_id: &str, candidates: &mut Vec<String>) {
        let recent = self.recent();
        if recent.codes.is_empty() && recent.shown.is_empty() {
            return;
        }
        candidates.retain(|c| {
            recent.codes.get(c).is_none_or(|id| id == case_id)
                && recent.shown.get(c).is_none_or(|id| id == case_id)
        });
    }

    /// A case kept to recheck was recorded again under `code`, another
    /// than the one kept: keep that one from now on, in memory and (the
    /// last line wins) in the recent file. Else the next recheck records it
    /// under the old code, which another case now holds, and takes that
    /// case's code from it in turn (chaos run: the same 16 cases changed
    /// codes at every restore).
    fn recorded_as(&self, case_id: &str, code: &str) {
        let mut recent = self.recent();
        let mut updated = None;
        for e in recent.entries.iter_mut().filter(|e| e.id == case_id) {
            e.codes.retain(|c| c != code);
            e.codes.insert(0, code.to_owned());
            e.recorded = Some(code.to_owned());
            updated = Some(e.clone());
        }
        let Some(updated) = updated else {
            return;
        };
        recent.codes.retain(|_, id| id != case_id);
        recent.codes.insert(code.to_owned(), case_id.to_owned());
        if recent.unsaved.len() >= RECHECK_MAX {
            recent.unsaved.pop_front();
        }
        recent.unsaved.push_back(updated);
    }

    /// Whether this instance knows `code` as another case's than
    /// `case_id`'s: one it recorded lately, or one a spooled case was shown.
    pub fn code_taken(&self, code: &str, case_id: &str) -> bool {
        let recent = self.recent();
        recent.codes.get(code).is_some_and(|id| id != case_id)
            || recent.shown.get(code).is_some_and(|id| id != case_id)
    }

    /// Spare the codes `entries` were shown with until they are recorded
    /// ([`Recent::shown`]).
    fn spare_shown(&self, entries: &[Entry]) {
        let mut recent = self.recent();
        for e in entries {
            if let Some(code) = &e.code
                && e.recorded.is_none()
            {
                recent.shown.insert(code.clone(), e.id.clone());
            }
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cases kept to recheck now.
    pub fn remembered(&self) -> usize {
        self.recent().entries.len()
    }

    /// When the store faltered since the last call (`disturbances`, from
    /// [`Store::disturbances`], grew), copy the cases recorded in the last
    /// [`RECHECK_WINDOW_MS`] into the spool file (those not waiting there
    /// already), `fsync`ed, to be replayed like any spooled case: one still
    /// in the store is left alone, a missing one is recorded again. They
    /// stay in memory until the window has passed: another fault may take
    /// them back again. Cases taken over from a stopped instance
    /// (`Spool::adopt`) are rechecked the same way, the store faltering
    /// or not. Returns how many were written, and whether the store
    /// faltered (`false`: only taken-over cases were due, as after every
    /// restart: not a fault to report).
    ///
    /// # Errors
    /// When the disk refuses: the next call writes them again.
    pub async fn recheck(&self, disturbances: u64, now_ms: u64) -> std::io::Result<(usize, bool)> {
        let (taken, faltered): (Vec<Entry>, bool) = {
            let mut recent = self.recent();
            let grew = recent.seen.is_some_and(|s| s != disturbances);
            recent.faltered |= grew;
            let due = recent.retry || grew;
            recent.seen = Some(disturbances);
            recent.retry = false;
            if !due {
                return Ok((0, false));
            }
            if recent.last.is_some_and(|l| l.elapsed() < recent.gap) {
                recent.retry = true;
                return Ok((0, false));
            }
            recent.last = Some(std::time::Instant::now());
            let faltered = std::mem::take(&mut recent.faltered);
            // Kept in memory after the copy: a later fault within the
            // window may take them back again.
            let oldest = now_ms.saturating_sub(RECHECK_WINDOW_MS);
            while recent
                .entries
                .front()
                .is_some_and(|e| e.spooled_at_ms < oldest)
            {
                if let Some(gone) = recent.entries.pop_front() {
                    recent.forget(&gone);
                }
            }
            // A case recorded again falls back (when another case holds
            // its code) to none of the codes the others were recorded
            // with: it would take the code of a case not yet recorded
            // again, which would then move too.
            let codes = &recent.codes;
            let taken = recent
                .entries
                .iter()
                .filter(|e| !e.closed)
                .map(|e| {
                    let mut e = e.clone();
                    let first = e.codes.first().cloned();
                    e.codes.retain(|c| {
                        Some(c) == first.as_ref() || codes.get(c).is_none_or(|id| *id == e.id)
                    });
                    e
                })
                .collect();
            (taken, faltered)
        };
        if taken.is_empty() {
            return Ok((0, faltered));
        }
        let _guard = self.lock.lock().await;
        let path = self.path();
        let added = blocking(move || {
            let spooled = files::read_entries(&path)?;
            let new: Vec<Entry> = taken
                .into_iter()
                .filter(|e| !spooled.iter().any(|s| s.id == e.id))
                .collect();
            if !new.is_empty() {
                files::append_entries(&path, &new)?;
            }
            Ok(new.len())
        })
        .await;
        match added {
            Ok(n) => {
                self.pending.fetch_add(n, Ordering::SeqCst);
                Ok((n, faltered))
            }
            Err(e) => {
                // Still in memory: the next call writes them again.
                let mut recent = self.recent();
                recent.retry = true;
                recent.faltered |= faltered;
                Err(e)
            }
        }
    }

    /// Replay this instance's own spooled cases into `store`.
    ///
    /// # Errors
    /// When the store is still down (entries stay), or the disk fails.
    pub async fn replay(&self, store: &dyn Store, now_ms: u64) -> Result<Replayed, StoreError> {
        let _guard = self.lock.lock().await;
        let r = replay_file(self, self.path(), store, now_ms).await;
        if let Some((n, waiting)) = r.remaining {
            self.pending.store(n, Ordering::SeqCst);
            self.waiting.store(waiting, Ordering::SeqCst);
        }
        match r.error {
            Some(e) => Err(e),
            None => Ok(r.done),
        }
    }

    /// Take in the recent cases of every spool no live instance holds
    /// (`Spool::adopt`), without the store: done once before the
    /// listeners answer, so that their codes are spared from the first
    /// request (a restart onto a Redis emptied meanwhile: their codes look
    /// free until they are recorded again). Returns how many were taken in.
    ///
    /// # Errors
    /// When the disk refuses (the worker's replay tries again).
    pub async fn adopt_orphans_recent(&self, now_ms: u64) -> std::io::Result<usize> {
        let (dir, own) = (self.dir.clone(), self.stem.clone());
        let stems = blocking(move || files::other_stems(&dir, &own)).await?;
        let mut total = 0;
        for stem in stems {
            let (dir, s) = (self.dir.clone(), stem.clone());
            let Some(held) = blocking(move || files::try_lock(&dir, &s)).await? else {
                continue; // a live instance's
            };
            total += self.adopt_recent_of(&stem, now_ms).await?;
            drop(held);
        }
        Ok(total)
    }

    /// Take in the recent cases of the stopped instance `stem` (whose lock
    /// the caller holds), written to this instance's recent file; then its
    /// copy can go. Returns how many were taken in.
    async fn adopt_recent_of(&self, stem: &str, now_ms: u64) -> std::io::Result<usize> {
        let path = files::recent_path(&self.dir, stem);
        let recent = blocking(move || files::read_entries(&path)).await?;
        let mut adopted = 0;
        if !recent.is_empty() {
            adopted = self.adopt(recent, now_ms);
            self.save_recent(now_ms).await?;
            if adopted > 0 {
                // Every restart does this: not a fault (the recheck that
                // follows reports what it finds).
                tracing::info!(
                    cases = adopted,
                    "took over the cases a stopped instance recorded in the last hour: rechecking them"
                );
            }
        }
        let (dir, s) = (self.dir.clone(), stem.to_owned());
        blocking(move || files::remove_recent(&dir, &s)).await?;
        Ok(adopted)
    }

    /// Replay every spool in the folder that no live instance holds (a
    /// crashed or stopped instance's, an earlier version's `cases.jsonl`),
    /// removing each once it is empty; take in its recent cases first
    /// ([`Spool::save_recent`]), to be rechecked.
    ///
    /// # Errors
    /// When the store is down (entries stay for the next try), or the disk
    /// fails.
    pub async fn replay_orphans(
        &self,
        store: &dyn Store,
        now_ms: u64,
    ) -> Result<Replayed, StoreError> {
        let (dir, own) = (self.dir.clone(), self.stem.clone());
        let stems = blocking(move || files::other_stems(&dir, &own))
            .await
            .map_err(io_unavailable)?;
        let mut total = Replayed::default();
        for stem in stems {
            let dir = self.dir.clone();
            let s = stem.clone();
            let Some(held) = blocking(move || files::try_lock(&dir, &s))
                .await
                .map_err(io_unavailable)?
            else {
                continue; // a live instance's
            };
            // Its recent cases first (the store is not needed for that).
            self.adopt_recent_of(&stem, now_ms)
                .await
                .map_err(io_unavailable)?;
            let r = replay_file(self, files::data_path(&self.dir, &stem), store, now_ms).await;
            total += r.done;
            if r.done.recorded > 0 {
                tracing::info!(
                    replayed = r.done.recorded,
                    "replayed a spool no instance holds"
                );
            }
            if let Some(e) = r.error {
                return Err(e);
            }
            // Its kept inbound SMS, after its cases (a lawyer's OK for one
            // of them finds it).
            let path = files::inbox_path(&self.dir, &stem);
            let inbox_left = match self.inbound() {
                Some(handler) if path.exists() => {
                    let unshared = tokio::sync::Mutex::new(());
                    let privacy = handler.privacy();
                    let done = inbox::replay(path, &privacy, handler.as_ref(), &unshared)
                        .await
                        .map_err(io_unavailable)?;
                    if done.handled > 0 {
                        tracing::info!(
                            handled = done.handled,
                            "handled the SMS a stopped instance kept while the store was down"
                        );
                    }
                    done.remaining
                }
                Some(_) => 0,
                // Nobody here handles SMS: leave them to an instance that does.
                None => usize::from(path.exists()),
            };
            if inbox_left == 0 && r.remaining.is_some_and(|(n, _)| n == 0) {
                let dir = self.dir.clone();
                blocking(move || files::remove(&dir, &stem))
                    .await
                    .map_err(io_unavailable)?;
            }
            drop(held);
        }
        Ok(total)
    }
}

/// What replaying one spool file did.
struct FileReplay {
    /// What was recorded.
    done: Replayed,
    /// Entries the file holds now, when known, and how many of them are
    /// cases completed while the store was down.
    remaining: Option<(usize, usize)>,
    /// Why replay stopped early (the store went away, the disk failed).
    error: Option<StoreError>,
}

/// Replay the entries of one spool file (whose lock the caller holds) and
/// write back those not recorded.
async fn replay_file(spool: &Spool, path: PathBuf, store: &dyn Store, now_ms: u64) -> FileReplay {
    let mut out = FileReplay {
        done: Replayed::default(),
        remaining: None,
        error: None,
    };
    let p = path.clone();
    let entries = match blocking(move || files::read_entries(&p)).await {
        Ok(e) => e,
        Err(e) => {
            out.error = Some(io_unavailable(e));
            return out;
        }
    };
    // Before the first store call: a store that came back empty must not
    // give these codes to new cases meanwhile.
    spool.spare_shown(&entries);
    let total = entries.len();
    let mut remaining = Vec::new();
    for entry in entries {
        // A case shown no code takes the first free one of its candidates:
        // not while the store may call a lost case's code free
        // (`Store::trusted`). Her leased code, or a case this instance
        // recorded before, goes at once.
        let waits =
            entry.recorded.is_none() && entry.code.is_none() && !store.trusted(entry.bucket);
        if out.error.is_some() || waits {
            remaining.push(entry);
            continue;
        }
        match replay_entry(spool, &entry, store, now_ms).await {
            Ok(Some(done)) => out.done += done,
            Ok(None) => remaining.push(entry),
            Err(e) => {
                out.error = Some(e);
                remaining.push(entry);
            }
        }
    }
    let n = (
        remaining.len(),
        remaining.iter().filter(|e| e.recorded.is_none()).count(),
    );
    if n.0 == total {
        out.remaining = Some(n);
    } else {
        match blocking(move || files::write_entries(&path, &remaining)).await {
            Ok(()) => out.remaining = Some(n),
            // The recorded entries stay in the file: replaying them again
            // is harmless (idempotent).
            Err(e) => out.error = out.error.or(Some(io_unavailable(e))),
        }
    }
    out
}

/// Record one entry: what it did (one case recorded; with another code
/// than the one shown, or with the shown one as its alias), or `None` when
/// it cannot be decoded (kept for an operator). A spooled case once
/// recorded is kept by `spool` to recheck like any case it recorded
/// ([`Spool::remember`]): the store may take this write back too.
async fn replay_entry(
    spool: &Spool,
    entry: &Entry,
    store: &dyn Store,
    now_ms: u64,
) -> Result<Option<Replayed>, StoreError> {
    let Some(case) = entry.to_case() else {
        tracing::error!(case = %entry.id, "spool entry cannot be decoded; kept for an operator");
        return Ok(None);
    };
    if let Some(code) = &entry.recorded {
        return Ok(Some(
            match store.restore_case(entry.bucket, case, now_ms).await? {
                None => Replayed {
                    rechecked: 1,
                    ..Replayed::default()
                },
                Some(got) => {
                    let changed = got != *code;
                    if changed {
                        spool.recorded_as(&entry.id, &got);
                    }
                    // The case id only: codes are never logged.
                    tracing::error!(case = %entry.id, code_changed = changed, "the store had lost a case it acknowledged (a failover or crash took the write back): recorded again, with its offer and timers");
                    Replayed {
                        recorded: 1,
                        restored: 1,
                        codes_changed: usize::from(changed),
                        ..Replayed::default()
                    }
                }
            },
        ));
    }
    let kept = case.clone();
    let (changed, aliased, code) = match entry.lease() {
        Some(lease) => {
            let done = store
                .record_leased_case(entry.bucket, case, &lease, now_ms)
                .await?;
            (done.code != lease.code, done.aliased, done.code)
        }
        None => {
            let code = store.record_case(entry.bucket, case, now_ms).await?;
            (false, false, code)
        }
    };
    spool.remember(entry.bucket, &kept, &code, now_ms);
    if let Some(shown) = &entry.code {
        let mut recent = spool.recent();
        if recent.shown.get(shown).is_some_and(|id| *id == entry.id) {
            recent.shown.remove(shown);
        }
    }
    if changed {
        tracing::error!(case = %entry.id, "a case recorded from the spool got another code than the one its caller was shown (lost code lease)");
    } else if aliased {
        // The case id only: codes are never logged.
        tracing::info!(case = %entry.id, "a spooled case was recorded meanwhile under another code: the code its caller was shown is now its alias, and its messages name both");
    } else {
        tracing::info!(case = %entry.id, "spooled case recorded");
    }
    Ok(Some(Replayed {
        recorded: 1,
        codes_changed: usize::from(changed),
        codes_aliased: usize::from(aliased),
        ..Replayed::default()
    }))
}

impl crate::deps::CaseSettled for Spool {
    fn case_settled(&self, case: &crate::deps::Settled<'_>) {
        self.settle(case);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    /// A case of bucket 2 (its candidate codes are of bucket 2).
    fn case(id: &str) -> NewCase {
        NewCase {
            id: id.into(),
            code_candidates: vec!["1234".into(), "1250".into()],
            data: vec![1, 2, 3],
            jobs: vec![(
                Queue::Timers,
                Job {
                    id: format!("{id}-t"),
                    due_ms: 5,
                    payload: b"{}".to_vec(),
                },
            )],
        }
    }

    #[tokio::test]
    async fn cases_survive_a_reopen_and_replay_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        assert_eq!(
            spool.append(2, &case("c1"), None, 1).await.unwrap(),
            Appended::Added
        );
        assert_eq!(
            spool.append(2, &case("c1"), None, 2).await.unwrap(),
            Appended::Already { code: None }
        );
        let c2 = NewCase {
            code_candidates: vec!["1251".into()],
            ..case("c2")
        };
        spool.append(3, &c2, None, 3).await.unwrap();
        assert_eq!(spool.pending(), 2, "a retried append is not added twice");
        assert!(
            Spool::open(dir.path(), "a").is_err(),
            "one process holds a spool"
        );
        drop(spool);
        let spool = Spool::open(dir.path(), "a").unwrap();
        assert_eq!(spool.pending(), 2, "the spool is on disk");
        let store = MemoryStore::new(10);
        assert_eq!(spool.replay(&store, 10).await.unwrap().recorded, 2);
        assert_eq!(spool.pending(), 0);
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1234");
        assert_eq!(store.case(3, "c2").await.unwrap().unwrap().code, "1251");
        // Replaying the same case again (a crash before the spool was
        // rewritten) leaves the store as it was.
        spool.append(2, &case("c1"), None, 11).await.unwrap();
        assert_eq!(spool.replay(&store, 12).await.unwrap().recorded, 1);
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1234");
        let in_2 = store.claim(2, Queue::Timers, 100, 1000, 10).await.unwrap();
        let in_3 = store.claim(3, Queue::Timers, 100, 1000, 10).await.unwrap();
        assert_eq!(
            (in_2.len(), in_3.len()),
            (1, 1),
            "each case's job once, in its bucket"
        );
    }

    #[tokio::test]
    async fn a_shown_code_that_becomes_an_alias_is_counted_once() {
        use crate::store::{LeaseRequest, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        let store = MemoryStore::new(10);
        let held = store
            .lease_codes(LeaseRequest {
                bucket: 2,
                holder: "a".into(),
                keep: Vec::new(),
                candidates: vec!["1266".into()],
                target: 1,
                ttl_ms: 60_000,
                now_ms: 1,
            })
            .await
            .unwrap();
        assert_eq!(held, ["1266"]);
        let shown = CodeLease {
            code: "1266".into(),
            holder: "a".into(),
        };
        spool.append(2, &case("c1"), Some(&shown), 2).await.unwrap();
        // The commit that timed out landed under its own code.
        store.record_case(2, case("c1"), 3).await.unwrap();
        let done = spool.replay(&store, 4).await.unwrap();
        assert_eq!(
            done,
            Replayed {
                recorded: 1,
                codes_aliased: 1,
                ..Replayed::default()
            }
        );
        let rec = store.case(2, "c1").await.unwrap().unwrap();
        assert_eq!(rec.named_code(), "1234/1266");
        // Replayed again (a crash before the rewrite): not counted again.
        spool.append(2, &case("c1"), Some(&shown), 5).await.unwrap();
        assert_eq!(spool.replay(&store, 6).await.unwrap().codes_aliased, 0);
    }

    #[tokio::test]
    async fn an_earlier_versions_cases_jsonl_is_replayed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A line as earlier versions wrote it: no `code`, no `holder`.
        let old = Entry::from_case(2, &case("c_old"), None, 1);
        std::fs::write(
            dir.path().join("cases.jsonl"),
            format!("{}\n", serde_json::to_string(&old).unwrap()),
        )
        .unwrap();
        let spool = Spool::open(dir.path(), "b").unwrap();
        let store = MemoryStore::new(10);
        assert_eq!(spool.replay_orphans(&store, 5).await.unwrap().recorded, 1);
        assert_eq!(store.case(2, "c_old").await.unwrap().unwrap().code, "1234");
        assert!(!dir.path().join("cases.jsonl").exists());
        assert!(!dir.path().join("cases.lock").exists());
    }

    #[tokio::test]
    async fn cases_recorded_lately_are_rechecked_when_the_store_falters() {
        use crate::store::Store as _;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        let store = MemoryStore::new(10);
        // c1 stays in the store; c2 the store took back (it never got it
        // here); c0 was recorded longer ago than the window.
        let old = NewCase {
            code_candidates: vec!["1298".into()],
            ..case("c0")
        };
        spool.remember(2, &old, "1298", 1_000);
        let code1 = store.record_case(2, case("c1"), 5).await.unwrap();
        assert_eq!(code1, "1234");
        spool.remember(2, &case("c1"), &code1, 5_000);
        // c2 was given its second candidate (the first was taken then).
        spool.remember(2, &case("c2"), "1250", 6_000);
        assert_eq!(spool.remembered(), 3);
        let now = RECHECK_WINDOW_MS + 3_000;
        // The first look only learns the count; the same count again: the
        // store has not faltered.
        assert_eq!(spool.recheck(7, now).await.unwrap().0, 0);
        assert_eq!(spool.recheck(7, now).await.unwrap().0, 0);
        assert_eq!(spool.pending(), 0);
        // It faltered: the two within the window go to the spool file, and
        // stay in memory.
        assert_eq!(spool.recheck(8, now).await.unwrap(), (2, true));
        assert_eq!((spool.pending(), spool.remembered()), (2, 2));
        assert_eq!(spool.waiting(), 0, "no woman waits for these");
        assert_eq!(spool.recheck(8, now).await.unwrap().0, 0, "written once");
        // Faltering again while they wait in the file writes nothing twice.
        assert_eq!(spool.recheck(9, now).await.unwrap().0, 0);
        let done = spool.replay(&store, now).await.unwrap();
        assert_eq!(
            done,
            Replayed {
                recorded: 1,
                restored: 1,
                rechecked: 1,
                ..Replayed::default()
            }
        );
        assert_eq!(spool.pending(), 0);
        // c2 is back under the code its caller was given, with its job.
        let c2 = store.case(2, "c2").await.unwrap().unwrap();
        assert_eq!(c2.code, "1250");
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1234");
        let jobs = store.claim(2, Queue::Timers, now, 1000, 10).await.unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j.job.id.as_str()).collect();
        assert_eq!(ids, ["c1-t", "c2-t"], "c1's job once, c2's again");
        assert!(
            store.case(2, "c0").await.unwrap().is_none(),
            "out of the window"
        );
        // A later fault within the window: both are checked again.
        assert_eq!(spool.recheck(10, now + 1).await.unwrap().0, 2);
        let again = spool.replay(&store, now + 1).await.unwrap();
        assert_eq!((again.rechecked, again.restored), (2, 0));
        // Once the window has passed, nothing is kept.
        let later = now + RECHECK_WINDOW_MS;
        assert_eq!(spool.recheck(11, later).await.unwrap().0, 0);
        assert_eq!(spool.remembered(), 0);
    }

    /// A code this instance recorded a case with is not given to another
    /// case (it looks free once Redis lost its case), nor taken by another
    /// case recorded again; the case's own code is left to it (a retry).
    #[tokio::test]
    async fn codes_of_recent_cases_are_spared_for_them() {
        use crate::store::Store as _;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        let c1 = NewCase {
            code_candidates: vec!["1234".into(), "1250".into(), "1266".into()],
            ..case("c1")
        };
        let c2 = NewCase {
            code_candidates: vec!["1250".into(), "1234".into(), "1266".into()],
            ..case("c2")
        };
        spool.remember(2, &c1, "1234", 10);
        spool.remember(2, &c2, "1250", 11);
        let mut new = vec!["1234".to_owned(), "1266".into(), "1250".into()];
        spool.spare_codes("c9", &mut new);
        assert_eq!(new, ["1266"], "a new case: neither recent code");
        let mut retry = vec!["1234".to_owned(), "1250".into()];
        spool.spare_codes("c1", &mut retry);
        assert_eq!(retry, ["1234"], "the case itself keeps its own");
        assert!(spool.code_taken("1234", "c9"));
        assert!(!spool.code_taken("1234", "c1"));
        assert!(!spool.code_taken("1266", "c9"));

        // Redis lost both; c3 took c1's code meanwhile (another instance).
        let store = MemoryStore::new(10);
        let c3 = NewCase {
            code_candidates: vec!["1234".into()],
            ..case("c3")
        };
        store.record_case(2, c3, 12).await.unwrap();
        spool.recheck(0, 20).await.unwrap();
        assert_eq!(spool.recheck(1, 20).await.unwrap().0, 2);
        spool.replay(&store, 20).await.unwrap();
        // c1 falls back past c2's code: 1266, and c2 keeps its own.
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1266");
        assert_eq!(store.case(2, "c2").await.unwrap().unwrap().code, "1250");
        // Lost again: c1 comes back under the code it has now, not the one
        // c3 took (which would take c3's from it in turn).
        let again = MemoryStore::new(10);
        again
            .record_case(
                2,
                NewCase {
                    code_candidates: vec!["1234".into()],
                    ..case("c3")
                },
                21,
            )
            .await
            .unwrap();
        assert_eq!(spool.recheck(2, 22).await.unwrap().0, 2);
        let done = spool.replay(&again, 22).await.unwrap();
        assert_eq!((done.restored, done.codes_changed), (2, 0));
        assert_eq!(again.case(2, "c1").await.unwrap().unwrap().code, "1266");
        // Out of the window, the codes are free again.
        spool.remember(2, &case("c4"), "1282", RECHECK_WINDOW_MS + 100);
        let mut later = vec!["1234".to_owned(), "1250".into()];
        spool.spare_codes("c9", &mut later);
        assert_eq!(later, ["1234", "1250"]);
    }

    /// A line torn by a full disk (or a crash) does not swallow the next
    /// case appended after it, and a rewrite keeps it aside for an operator
    /// instead of dropping it (operator audit: a case shown a code was lost
    /// after the spool's disk filled).
    #[tokio::test]
    async fn a_torn_line_neither_swallows_the_next_case_nor_is_dropped() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.append(2, &case("c1"), None, 1).await.unwrap();
        // What a write cut short leaves: half a line, no newline.
        let line = serde_json::to_string(&Entry::from_case(2, &case("c0"), None, 0)).unwrap();
        let torn = &line[..line.len() / 2];
        std::fs::OpenOptions::new()
            .append(true)
            .open(spool.path())
            .unwrap()
            .write_all(torn.as_bytes())
            .unwrap();
        spool.append(2, &case("c2"), None, 2).await.unwrap();
        let read = files::read_entries(&spool.path()).unwrap();
        let ids: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2"], "c2 on a line of its own");
        let store = MemoryStore::new(10);
        assert_eq!(spool.replay(&store, 3).await.unwrap().recorded, 2);
        let aside = std::fs::read_to_string(dir.path().join("cases-a.jsonl.unreadable")).unwrap();
        assert_eq!(aside, format!("{torn}\n"), "kept, once");
        // Rewritten again: not kept twice.
        let c3 = NewCase {
            code_candidates: vec!["1266".into()],
            ..case("c3")
        };
        spool.append(2, &c3, None, 4).await.unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(spool.path())
            .unwrap()
            .write_all(format!("{torn}\n").as_bytes())
            .unwrap();
        spool.replay(&store, 5).await.unwrap();
        let aside = std::fs::read_to_string(dir.path().join("cases-a.jsonl.unreadable")).unwrap();
        assert_eq!(aside, format!("{torn}\n"));
    }

    /// A code shown to a woman while the store was down is not given to a
    /// new case before hers is recorded: a Redis restarted empty has lost
    /// the code's lease, and the code looks free there. This instance's
    /// own spooled cases are spared from the append, another's from the
    /// first read of its spool file, whatever the store answers.
    #[tokio::test]
    async fn codes_shown_during_an_outage_are_spared_until_their_cases_are_recorded() {
        use crate::store::Store as _;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        let lease = |code: &str| CodeLease {
            code: code.into(),
            holder: "a".into(),
        };
        let c1 = NewCase {
            code_candidates: vec!["1234".into(), "1266".into()],
            ..case("c1")
        };
        spool.append(2, &c1, Some(&lease("1266")), 1).await.unwrap();
        let mut new = vec!["1266".to_owned(), "1282".into()];
        spool.spare_codes("c9", &mut new);
        assert_eq!(new, ["1282"], "not the code c1 was shown");
        let mut own = vec!["1266".to_owned()];
        spool.spare_codes("c1", &mut own);
        assert_eq!(own, ["1266"], "c1 keeps it");
        // Redis came back empty: c1 takes the code it was shown, which
        // stays spared as the code it was recorded with.
        let store = MemoryStore::new(10);
        spool.replay(&store, 2).await.unwrap();
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1266");
        assert!(spool.recent().shown.is_empty());
        let mut after = vec!["1266".to_owned(), "1282".into()];
        spool.spare_codes("c9", &mut after);
        assert_eq!(after, ["1282"]);

        // A stopped instance's spool: its entry cannot be recorded (here:
        // its data is damaged, kept for an operator), and its shown code is
        // spared from the first read on.
        let mut broken = Entry::from_case(2, &case("c2"), Some(&lease("1298")), 3);
        broken.holder = Some("dead".into());
        broken.data = "not base64!".into();
        std::fs::write(
            dir.path().join("cases-dead.jsonl"),
            format!("{}\n", serde_json::to_string(&broken).unwrap()),
        )
        .unwrap();
        let mut before = vec!["1298".to_owned()];
        spool.spare_codes("c9", &mut before);
        assert_eq!(before, ["1298"], "not read yet");
        spool.replay_orphans(&store, 4).await.unwrap();
        let mut read = vec!["1298".to_owned(), "1314".into()];
        spool.spare_codes("c9", &mut read);
        assert_eq!(read, ["1314"]);
    }

    #[tokio::test]
    async fn rechecks_are_at_least_the_gap_apart_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.recent().gap = std::time::Duration::from_millis(200);
        spool.remember(2, &case("c1"), "1234", 10);
        spool.recheck(0, 10).await.unwrap();
        assert_eq!(spool.recheck(1, 10).await.unwrap().0, 1);
        let store = MemoryStore::new(10);
        spool.replay(&store, 10).await.unwrap();
        // Faltering again at once: deferred, not dropped.
        assert_eq!(spool.recheck(2, 10).await.unwrap().0, 0);
        assert_eq!(
            spool.recheck(2, 10).await.unwrap().0,
            0,
            "still within the gap"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        assert_eq!(
            spool.recheck(2, 10).await.unwrap().0,
            1,
            "once the gap has passed"
        );
    }

    #[tokio::test]
    async fn at_most_recheck_max_cases_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        for i in 0..RECHECK_MAX + 5 {
            spool.remember(2, &case(&format!("c{i}")), "1234", 10);
        }
        assert_eq!(spool.remembered(), RECHECK_MAX);
        spool.recheck(0, 10).await.unwrap();
        assert_eq!(spool.recheck(1, 10).await.unwrap().0, RECHECK_MAX);
        let ids: Vec<String> = files::read_entries(&spool.path())
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids.first().map(String::as_str),
            Some("c5"),
            "the oldest went"
        );
    }

    /// A restart forgets nothing: the next instance (or a sibling) takes
    /// over the recent cases of the one that stopped and rechecks them at
    /// once, though it never saw the store falter.
    #[tokio::test]
    async fn a_restart_takes_over_the_recent_cases_and_rechecks_them() {
        use crate::store::Store as _;
        let dir = tempfile::tempdir().unwrap();
        let now = RECHECK_WINDOW_MS + 10_000;
        let old = Spool::open(dir.path(), "a").unwrap();
        old.remember(2, &case("c1"), "1234", now - 5_000);
        old.remember(2, &case("c2"), "1250", now - 4_000);
        // Past the window when the next instance starts: not taken over.
        old.remember(2, &case("c0"), "1266", now - RECHECK_WINDOW_MS - 1);
        assert_eq!(old.save_recent(now - 3_000).await.unwrap(), 3);
        old.remember(2, &case("c3"), "1282", now - 2_000);
        assert_eq!(old.save_recent(now - 1_000).await.unwrap(), 1);
        drop(old); // killed: nothing more written
        let recent = dir.path().join("cases-a.recent.jsonl");
        assert_eq!(files::read_entries(&recent).unwrap().len(), 4);

        let spool = Spool::open(dir.path(), "b").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        // The store took c1 and c3 back; c2 is there.
        let store = MemoryStore::new(10);
        let c2 = NewCase {
            code_candidates: vec!["1250".into()],
            ..case("c2")
        };
        store.record_case(2, c2, now - 4_000).await.unwrap();
        spool.replay_orphans(&store, now).await.unwrap();
        assert_eq!(spool.remembered(), 3, "taken over");
        assert!(!recent.exists(), "the orphan's copy is gone");
        assert!(!dir.path().join("cases-a.lock").exists());
        let mut taken = vec!["1234".to_owned(), "1298".into()];
        spool.spare_codes("c9", &mut taken);
        assert_eq!(taken, ["1298"], "their codes are spared");
        // Rechecked with no fault seen, and reported as no fault.
        assert_eq!(spool.recheck(0, now).await.unwrap(), (3, false));
        let done = spool.replay(&store, now).await.unwrap();
        assert_eq!((done.restored, done.rechecked), (2, 1));
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1234");
        assert_eq!(store.case(2, "c3").await.unwrap().unwrap().code, "1282");
        // In this instance's own file now, for its own restart.
        spool.save_recent(now).await.unwrap();
        let own = files::read_entries(&dir.path().join("cases-b.recent.jsonl")).unwrap();
        assert_eq!(own.len(), 3);
    }

    /// A case settled on this instance is rechecked as it stands, also by
    /// the instance that takes over after a restart: accepted with its new
    /// data and no message to send again, closed not at all.
    #[tokio::test]
    async fn settled_cases_are_rechecked_as_they_stand_across_a_restart() {
        use crate::deps::Settled;
        let dir = tempfile::tempdir().unwrap();
        let now = RECHECK_WINDOW_MS + 10_000;
        let old = Spool::open(dir.path(), "a").unwrap();
        let with_offer = |id: &str| {
            let mut c = case(id);
            c.jobs.push((
                Queue::Outbox,
                Job {
                    id: format!("{id}-offer"),
                    due_ms: 5,
                    payload: b"offer".to_vec(),
                },
            ));
            c
        };
        old.remember(2, &with_offer("c1"), "1234", now - 5_000);
        old.remember(2, &with_offer("c2"), "1250", now - 4_000);
        old.remember(2, &with_offer("c3"), "1266", now - 3_000);
        old.save_recent(now - 3_000).await.unwrap();
        let erase = [Job {
            id: "c2-erase".into(),
            due_ms: 9,
            payload: b"{}".to_vec(),
        }];
        // Closed when it brings timers (the erase), else accepted.
        fn settled<'a>(id: &'a str, code: &'a str, timers: &'a [Job], now: u64) -> Settled<'a> {
            let closed = !timers.is_empty();
            Settled {
                bucket: 2,
                id,
                code,
                aliased: false,
                data: if closed { b"closed" } else { b"accepted" },
                timers,
                closed,
                opened_ms: now - 5_000,
                now_ms: now - 2_000,
            }
        }
        old.settle(&settled("c1", "1234", &[], now));
        old.settle(&settled("c2", "1250", &erase, now));
        // Another instance's case, accepted here: taken in.
        old.settle(&settled("c9", "1298", &[], now));
        old.save_recent(now - 1_000).await.unwrap();
        drop(old);

        let spool = Spool::open(dir.path(), "b").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        let store = MemoryStore::new(10);
        spool.replay_orphans(&store, now).await.unwrap();
        assert_eq!(spool.remembered(), 4, "the closed one kept, for its code");
        let mut taken = vec!["1250".to_owned(), "1314".into()];
        spool.spare_codes("cx", &mut taken);
        assert_eq!(taken, ["1314"], "a closed case's code is still spared");
        assert_eq!(spool.recheck(0, now).await.unwrap(), (3, false));
        let spooled = files::read_entries(&spool.path()).unwrap();
        let by_id = |id: &str| spooled.iter().find(|e| e.id == id).cloned();
        let c1 = by_id("c1").expect("c1");
        assert_eq!(B64.decode(&c1.data).unwrap(), b"accepted");
        assert!(c1.jobs.iter().all(|(q, ..)| q == "timers"), "{:?}", c1.jobs);
        assert!(by_id("c2").is_none(), "closed: never recorded again");
        assert_eq!(
            B64.decode(&by_id("c3").expect("c3").data).unwrap(),
            [1, 2, 3]
        );
        assert_eq!(
            by_id("c3").unwrap().jobs.len(),
            2,
            "open: as first recorded"
        );
        let c9 = by_id("c9").expect("c9");
        assert_eq!(c9.codes, ["1298"]);
        assert_eq!(c9.recorded.as_deref(), Some("1298"));
    }

    /// A spooled case recorded once the store is back is rechecked like
    /// any other if the store then takes it back.
    #[tokio::test]
    async fn a_spooled_case_once_recorded_is_kept_to_recheck() {
        use crate::store::{LeaseRequest, Store as _};
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        spool.recent().gap = std::time::Duration::ZERO;
        let store = MemoryStore::new(10);
        store
            .lease_codes(LeaseRequest {
                bucket: 2,
                holder: "a".into(),
                keep: Vec::new(),
                candidates: vec!["1266".into()],
                target: 1,
                ttl_ms: 60_000,
                now_ms: 1,
            })
            .await
            .unwrap();
        let lease = CodeLease {
            code: "1266".into(),
            holder: "a".into(),
        };
        spool
            .append(2, &case("c1"), Some(&lease), 10)
            .await
            .unwrap();
        spool.replay(&store, 20).await.unwrap();
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1266");
        assert_eq!(spool.remembered(), 1);
        // Redis lost everything: it comes back under her code.
        let empty = MemoryStore::new(10);
        spool.recheck(0, 30).await.unwrap();
        assert_eq!(spool.recheck(1, 30).await.unwrap().0, 1);
        let done = spool.replay(&empty, 30).await.unwrap();
        assert_eq!(done.restored, 1);
        assert_eq!(empty.case(2, "c1").await.unwrap().unwrap().code, "1266");
    }

    /// Past the window the recent file is rewritten without them, and
    /// removed once nothing is left: it keeps no case much longer than
    /// the window.
    #[tokio::test]
    async fn the_recent_file_keeps_nothing_long_past_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        let recent = dir.path().join("cases-a.recent.jsonl");
        spool.remember(2, &case("c1"), "1234", 1_000);
        spool.save_recent(1_000).await.unwrap();
        spool.remember(2, &case("c2"), "1250", 600_000);
        spool.save_recent(600_000).await.unwrap();
        assert_eq!(files::read_entries(&recent).unwrap().len(), 2);
        // c1 is past the window, but not yet by the compaction's slack.
        let t = 1_000 + RECHECK_WINDOW_MS + 1;
        assert_eq!(spool.save_recent(t).await.unwrap(), 0);
        assert_eq!(files::read_entries(&recent).unwrap().len(), 2);
        let t = 1_000 + RECHECK_WINDOW_MS + RECENT_COMPACT_MS + 1;
        spool.save_recent(t).await.unwrap();
        let ids: Vec<String> = files::read_entries(&recent)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["c2"]);
        spool
            .save_recent(600_000 + RECHECK_WINDOW_MS + 1)
            .await
            .unwrap();
        assert!(!recent.exists(), "nothing left: no file");
    }

    /// Handles kept SMS while `up`; records what it was handed. The first
    /// message it is handed may be kept appending another (one that came
    /// in while the inbox was being handled).
    struct Handler {
        privacy: crate::privacy::Privacy,
        up: std::sync::atomic::AtomicBool,
        seen: std::sync::Mutex<Vec<String>>,
        spool: std::sync::Mutex<Option<Arc<Spool>>>,
    }

    #[async_trait::async_trait]
    impl Inbound for Handler {
        async fn handle_kept(&self, channel: &str, msg: crate::channel::SmsIn) -> bool {
            if !self.up.load(Ordering::SeqCst) {
                return false;
            }
            self.seen
                .lock()
                .unwrap()
                .push(format!("{channel}:{}", msg.text));
            let late = self.spool.lock().unwrap().take();
            if let Some(spool) = late {
                spool
                    .keep_inbound(&self.privacy, "kannel", &sms("late"), 9)
                    .await
                    .unwrap();
            }
            true
        }

        fn privacy(&self) -> crate::privacy::Privacy {
            self.privacy.clone()
        }
    }

    fn sms(text: &str) -> crate::channel::SmsIn {
        crate::channel::SmsIn {
            message_id: Some(format!("id-{text}")),
            from: crate::phone::PhoneNumber::parse_international("+996555123456").unwrap(),
            to: "21212".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn kept_sms_are_handled_in_order_once_the_store_answers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        let privacy = crate::privacy::Privacy::new(b"0123456789abcdef0123456789abcdef");
        let handler = Arc::new(Handler {
            privacy: privacy.clone(),
            up: false.into(),
            seen: Vec::new().into(),
            spool: None.into(),
        });
        let weak: std::sync::Weak<Handler> = Arc::downgrade(&handler);
        spool.set_inbound(weak);
        for t in ["one", "two", "three"] {
            spool
                .keep_inbound(&privacy, "kannel", &sms(t), 1)
                .await
                .unwrap();
        }
        assert_eq!(spool.inbox_pending(), 3);
        let path = dir.path().join("cases-a.inbox.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("555123456") && !text.contains("one"),
            "{text}"
        );
        // Still down: nothing handled, nothing lost.
        let r = spool.replay_inbox().await.unwrap();
        assert_eq!((r.handled, r.remaining), (0, 3));
        // Up: in order; one that came in meanwhile is kept for next time.
        handler.up.store(true, Ordering::SeqCst);
        *handler.spool.lock().unwrap() = Some(spool.clone());
        let r = spool.replay_inbox().await.unwrap();
        assert_eq!((r.handled, r.remaining), (3, 1));
        assert_eq!(
            *handler.seen.lock().unwrap(),
            ["kannel:one", "kannel:two", "kannel:three"]
        );
        let r = spool.replay_inbox().await.unwrap();
        assert_eq!((r.handled, r.remaining), (1, 0));
        assert_eq!(handler.seen.lock().unwrap().last().unwrap(), "kannel:late");
        assert!(!path.exists(), "empty: no file");
        // A restarted instance counts what its own file holds.
        spool
            .keep_inbound(&privacy, "kannel", &sms("four"), 1)
            .await
            .unwrap();
        drop(spool);
        let next = Spool::open(dir.path(), "b").unwrap();
        let weak: std::sync::Weak<Handler> = Arc::downgrade(&handler);
        next.set_inbound(weak);
        let store = MemoryStore::new(10);
        next.replay_orphans(&store, 5).await.unwrap();
        assert_eq!(handler.seen.lock().unwrap().last().unwrap(), "kannel:four");
        assert!(!path.exists() && !dir.path().join("cases-a.lock").exists());
    }

    #[tokio::test]
    async fn the_spool_holds_no_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), "a").unwrap();
        let mut c = case("c9");
        c.data = crate::privacy::Privacy::new(b"0123456789abcdef0123456789abcdef")
            .seal(b"+996555123456 Station 5");
        spool.append(0, &c, None, 1).await.unwrap();
        let text = std::fs::read_to_string(spool.path()).unwrap();
        assert!(!text.contains("555123456") && !text.contains("Station"));
    }
}
