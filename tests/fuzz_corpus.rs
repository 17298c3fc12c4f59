//! Replays every fuzz corpus file (`fuzz/corpus/<target>/*`: the committed
//! seeds and every input that once crashed a target) through the same
//! function its `cargo fuzz` target calls, under the plain test harness. So
//! CI keeps earlier crashes fixed without installing cargo-fuzz or a
//! nightly toolchain; `fuzz/run.sh` does the fuzzing itself
//! (docs/security.md).

use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod harness;

use harness::Adapter;

/// Every file of a target's corpus, each through `run`; the failures name
/// their files.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{target}: empty corpus");
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("corpus file");
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: crashed on {failed:#?}");
}

#[test]
fn channel_corpora() {
    for adapter in Adapter::ALL {
        // A fn pointer per adapter (replay takes plain functions).
        let run: fn(&[u8]) = match adapter {
            Adapter::AfricasTalking => |d| _ = harness::channel(Adapter::AfricasTalking, d),
            Adapter::Twilio => |d| _ = harness::channel(Adapter::Twilio, d),
            Adapter::Kannel => |d| _ = harness::channel(Adapter::Kannel, d),
            Adapter::Infobip => |d| _ = harness::channel(Adapter::Infobip, d),
            Adapter::Ussd => |d| _ = harness::channel(Adapter::Ussd, d),
        };
        replay(adapter.target(), run);
    }
}

/// The hand-written seeds (not the inputs that once crashed, named
/// `crash-*`) authenticate and parse: a renamed field or a changed secret
/// would otherwise leave the fuzzer starting from requests every adapter
/// refuses at once.
#[test]
fn channel_seeds_authenticate_and_parse() {
    for adapter in Adapter::ALL {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(adapter.target());
        for entry in std::fs::read_dir(&dir).expect("corpus") {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("crash-") || name.len() == 40 {
                continue;
            }
            let data = std::fs::read(&path).expect("corpus file");
            // Authentication and at least one parser.
            assert!(
                harness::channel(adapter, &data) >= 2,
                "{}: refused",
                path.display()
            );
        }
    }
}

#[test]
fn engine_corpus() {
    replay("engine", harness::engine);
}

#[test]
fn flow_load_corpus() {
    replay("flow_load", harness::flow_load);
}

#[test]
fn roster_load_corpus() {
    replay("roster_load", harness::roster_load);
}

#[test]
fn commands_corpus() {
    replay("commands", harness::commands);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", harness::proxy_header);
}
