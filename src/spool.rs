//! The durable spool: cases completed while the store was down.
//!
//! A woman who was told her request was received must reach a lawyer, even
//! if Redis failed at that moment. Such a case is appended to a local file
//! (one JSON line per case, `fsync`ed before she is answered) and replayed
//! into the store when it answers again. Replay is idempotent — a case id
//! already in the store is left alone — so a crash between recording and
//! removing an entry replays it again harmlessly: each case lands once.
//!
//! The file holds only sealed case data (see [`crate::privacy`]) and
//! pseudonymous ids: no number or location in clear. Case ids are
//! deterministic per session, so a retried request appends nothing twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::store::{Job, NewCase, Queue, Store, StoreError};

const FILE: &str = "cases.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    bucket: u16,
    id: String,
    codes: Vec<String>,
    data: String,
    jobs: Vec<(String, String, u64, String)>,
    spooled_at_ms: u64,
}

impl Entry {
    fn from_case(bucket: u16, case: &NewCase, now_ms: u64) -> Self {
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
        }
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
}

/// The spool of one gateway instance.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    lock: tokio::sync::Mutex<()>,
    pending: AtomicUsize,
}

fn read_entries(path: &Path) -> std::io::Result<Vec<Entry>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(e) => Some(e),
                Err(_) => {
                    // A torn last line from a crash mid-write: its case was
                    // never acknowledged to the caller (fsync comes first).
                    tracing::error!("skipping an unreadable spool line");
                    None
                }
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn write_entries(dir: &Path, path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        for e in entries {
            serde_json::to_writer(&mut f, e)?;
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl Spool {
    /// Open (creating the folder, private to this user) the spool in `dir`.
    ///
    /// # Errors
    /// When the folder cannot be created or the file read.
    pub fn open(dir: &Path) -> std::io::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let path = dir.join(FILE);
        let pending = read_entries(&path)?.len();
        Ok(Arc::new(Spool {
            path,
            lock: tokio::sync::Mutex::new(()),
            pending: AtomicUsize::new(pending),
        }))
    }

    /// Cases waiting to be replayed.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Append a case and `fsync` it. A case id already spooled is not
    /// appended again (a retried request).
    ///
    /// # Errors
    /// When the disk refuses; the caller must then not claim the case was
    /// received.
    pub async fn append(&self, bucket: u16, case: &NewCase, now_ms: u64) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let entry = Entry::from_case(bucket, case, now_ms);
        let added = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            if read_entries(&path)?.iter().any(|e| e.id == entry.id) {
                return Ok(false);
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            let mut line = serde_json::to_vec(&entry)?;
            line.push(b'\n');
            f.write_all(&line)?;
            f.sync_all()?;
            Ok(true)
        })
        .await
        .map_err(std::io::Error::other)??;
        if added {
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Replay every spooled case into `store`; returns how many were
    /// recorded (or found already recorded) and removed from the spool.
    ///
    /// # Errors
    /// When the store is still down (entries stay), or the disk fails.
    pub async fn replay(&self, store: &dyn Store, now_ms: u64) -> Result<usize, StoreError> {
        let _guard = self.lock.lock().await;
        let path = self.path.clone();
        let entries = tokio::task::spawn_blocking(move || read_entries(&path))
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut remaining = Vec::new();
        let mut done = 0;
        let mut failure = None;
        for entry in entries {
            if failure.is_some() {
                remaining.push(entry);
                continue;
            }
            let Some(case) = entry.to_case() else {
                tracing::error!(case = %entry.id, "spool entry cannot be decoded; kept for an operator");
                remaining.push(entry);
                continue;
            };
            match store.record_case(entry.bucket, case, now_ms).await {
                Ok(_) => {
                    tracing::info!(case = %entry.id, "spooled case recorded");
                    done += 1;
                }
                Err(e) => {
                    failure = Some(e);
                    remaining.push(entry);
                }
            }
        }
        if done > 0 {
            let dir = self
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let path = self.path.clone();
            let keep = remaining.clone();
            tokio::task::spawn_blocking(move || write_entries(&dir, &path, &keep))
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            self.pending.store(remaining.len(), Ordering::SeqCst);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

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
        let spool = Spool::open(dir.path()).unwrap();
        spool.append(2, &case("c1"), 1).await.unwrap();
        spool.append(2, &case("c1"), 2).await.unwrap();
        spool.append(3, &case("c2"), 3).await.unwrap();
        assert_eq!(spool.pending(), 2, "a retried append is not added twice");
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.pending(), 2, "the spool is on disk");
        let store = MemoryStore::new(10);
        assert_eq!(spool.replay(&store, 10).await.unwrap(), 2);
        assert_eq!(spool.pending(), 0);
        assert_eq!(store.case(2, "c1").await.unwrap().unwrap().code, "1234");
        assert_eq!(store.case(3, "c2").await.unwrap().unwrap().code, "1250");
        // Replaying the same case again (a crash before the spool was
        // rewritten) leaves the store as it was.
        spool.append(2, &case("c1"), 11).await.unwrap();
        assert_eq!(spool.replay(&store, 12).await.unwrap(), 1);
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
    async fn the_spool_holds_no_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let mut c = case("c9");
        c.data = crate::privacy::Privacy::new(b"0123456789abcdef0123456789abcdef")
            .seal(b"+996555123456 Station 5");
        spool.append(0, &c, 1).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("555123456") && !text.contains("Station"));
    }
}
