//! The git commit the binary was built from, for `hotline --version` and
//! the `commit` label of `hotline_build_info`: `git rev-parse --short
//! HEAD`, or "unknown" when there is no git or no checkout (a source
//! tarball). Never fails the build.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HOTLINE_GIT_COMMIT={commit}");
    // Run again when HEAD moves: a checkout changes .git/HEAD, a commit on
    // the current branch changes the branch's ref (or packed-refs).
    println!("cargo:rerun-if-changed=build.rs");
    // Only paths that exist: cargo runs the script every build for a
    // missing one.
    let git = Path::new(".git");
    let watch = |p: &Path| {
        if p.is_file() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    };
    watch(&git.join("HEAD"));
    watch(&git.join("packed-refs"));
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(r) = head.strip_prefix("ref: ")
    {
        watch(&git.join(r.trim()));
    }
}
