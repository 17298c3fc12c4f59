//! The spool's files: one JSON line per case, and the lock that says which
//! live instance owns a spool file.
//!
//! A spool is named by a *stem*: `cases-<instance>` (or `cases`, the single
//! file of earlier versions). `<stem>.jsonl` holds its entries and
//! `<stem>.lock` is held with an exclusive `flock` (std's
//! [`File::try_lock`]) by whoever may write the entries: the live instance
//! that appends to it, or an instance replaying it after its owner died.
//! The lock file is never renamed, so rewriting the entries (temporary file,
//! `fsync`, rename) does not drop the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Entry;

/// The stem of the single spool file of earlier versions (`cases.jsonl`).
pub(super) const LEGACY_STEM: &str = "cases";

/// `<dir>/<stem>.jsonl`.
pub(super) fn data_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.jsonl"))
}

/// `<dir>/<stem>.recent.jsonl`: the cases its instance recorded in the
/// last hour, to recheck after a restart ([`super::Spool::save_recent`]).
pub(super) fn recent_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.recent.jsonl"))
}

/// `<dir>/<stem>.inbox.jsonl`: inbound SMS kept while the store was down
/// (`super::inbox`).
pub(super) fn inbox_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.inbox.jsonl"))
}

fn lock_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.lock"))
}

/// Lock `<stem>.lock` without waiting; `None` when a live instance holds
/// it. The lock lasts as long as the returned file is open.
pub(super) fn try_lock(dir: &Path, stem: &str) -> std::io::Result<Option<File>> {
    let path = lock_path(dir, stem);
    // Bounded: a rival removes the lock file at most once per spool it
    // finished, and we retry only when that happened between our open and
    // our lock.
    for _ in 0..8 {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
        // An instance that finished replaying this spool removes its lock
        // file; a lock taken on the removed file protects nothing.
        if same_file(&file, &path) {
            return Ok(Some(file));
        }
    }
    Err(std::io::Error::other(
        "spool lock file keeps being replaced",
    ))
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// Remove a spool that holds nothing any more: its entries, its recent
/// cases (adopted by then) and its inbox (empty by then), then its lock
/// file (while still holding the lock).
pub(super) fn remove(dir: &Path, stem: &str) -> std::io::Result<()> {
    for path in [
        data_path(dir, stem),
        recent_path(dir, stem),
        inbox_path(dir, stem),
        lock_path(dir, stem),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remove `<stem>.recent.jsonl` (its cases were adopted), if it is there,
/// and `fsync` the folder.
pub(super) fn remove_recent(dir: &Path, stem: &str) -> std::io::Result<()> {
    match std::fs::remove_file(recent_path(dir, stem)) {
        Ok(()) => File::open(dir)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The stems of every spool in `dir` but `own`.
pub(super) fn other_stems(dir: &Path, own: &str) -> std::io::Result<Vec<String>> {
    let mut stems = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name
            .strip_suffix(".recent.jsonl")
            .or_else(|| name.strip_suffix(".inbox.jsonl"))
            .or_else(|| name.strip_suffix(".jsonl"))
            .or_else(|| name.strip_suffix(".lock"));
        if let Some(stem) = stem
            && stem != own
            && (stem == LEGACY_STEM || stem.starts_with("cases-"))
            && !stems.iter().any(|s| s == stem)
        {
            stems.push(stem.to_owned());
        }
    }
    stems.sort();
    Ok(stems)
}

/// Every readable entry of a spool file (none when it does not exist).
pub(super) fn read_entries(path: &Path) -> std::io::Result<Vec<Entry>> {
    read_lines(path, "spool")
}

/// Every readable line of a JSON-lines file (none when it does not exist);
/// `what` names the file in the log line about an unreadable one.
pub(super) fn read_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> std::io::Result<Vec<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match serde_json::from_str(l) {
                Ok(e) => Some(e),
                Err(_) => {
                    // A torn last line from a crash mid-write: what it
                    // held was never acknowledged (fsync comes first).
                    tracing::error!(file = what, "skipping an unreadable spool line");
                    None
                }
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Append lines and `fsync` them.
pub(super) fn append_entries<T: serde::Serialize>(
    path: &Path,
    entries: &[T],
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let mut lines = Vec::new();
    let len = f.metadata()?.len();
    // A torn last line (a crash mid-write) is not continued: the new
    // lines start on their own.
    let mut last = [0u8; 1];
    if len > 0 && f.read_at(&mut last, len - 1)? == 1 && last[0] != b'\n' {
        lines.push(b'\n');
    }
    for entry in entries {
        serde_json::to_writer(&mut lines, entry)?;
        lines.push(b'\n');
    }
    let written = f.write_all(&lines).and_then(|()| f.sync_all());
    if written.is_err() {
        // A part written (the disk filled): cut it off, so the next append
        // does not run into it and make both lines unreadable (operator
        // audit: a case shown a code was then dropped). Best effort.
        let _ = f.set_len(len).and_then(|()| f.sync_all());
    }
    written
}

/// The lines of `path` that do not read as a `T` — what [`read_lines`]
/// skips: torn by a crash mid-write, or damaged — are kept in
/// `<path>.unreadable` before the file is rewritten
/// without them: the rewrite never throws away what an operator may still
/// read (ops/RUNBOOK.md, `HotlineSpoolNotDraining`). A line kept there
/// before is not added again.
fn set_aside_unreadable<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<()> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let bad: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .filter(|l| serde_json::from_slice::<T>(l).is_err())
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(".unreadable");
    let aside = PathBuf::from(aside);
    let kept = match std::fs::read(&aside) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let kept: std::collections::HashSet<&[u8]> = kept.split(|b| *b == b'\n').collect();
    let mut out = Vec::new();
    for l in bad.into_iter().filter(|l| !kept.contains(l)) {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut f = OpenOptions::new().create(true).append(true).open(&aside)?;
    f.write_all(&out)?;
    f.sync_all()?;
    tracing::error!(
        lines = out.iter().filter(|b| **b == b'\n').count(),
        "unreadable spool lines set aside before the file was rewritten; see the runbook"
    );
    Ok(())
}

/// Replace a file's lines: a temporary file, `fsync`, rename, `fsync` of
/// the folder. The caller holds the spool's lock.
pub(super) fn write_entries<T: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    entries: &[T],
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    set_aside_unreadable::<T>(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        for e in entries {
            serde_json::to_writer(&mut f, e)?;
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
