//! Micro-benchmarks of the pure parts of a USSD hop (no I/O): the flow
//! engine's step, screen measuring, number parsing, pseudonyms and sealing.
//! Run with `cargo bench`; numbers are per operation on this machine.
//! The whole hop over HTTP is measured by `load-tests/run.sh`.

use std::hint::black_box;
use std::time::Instant;

use hotline::flow::{engine, parse};
use hotline::phone::{PhoneNumber, country_by_iso};
use hotline::privacy::Privacy;
use hotline::text::measure;

fn bench(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    println!("{name:<40} {:>9.0} ns/op", per.as_nanos() as f64);
}

fn main() {
    let flow = parse(
        include_str!("../flows/legal_help.toml"),
        "flows/legal_help.toml",
        "+996 000 000 000",
    )
    .expect("shipped flow")
    .0;
    let caller = engine::Caller {
        country: country_by_iso("KG"),
    };
    let start = engine::start(&flow, &caller, None, 0);
    let city = engine::step(&flow, &start.state, &caller, "1", 0);
    bench("engine::start", 200_000, || {
        black_box(engine::start(black_box(&flow), &caller, None, 0));
    });
    bench("engine::step (menu choice)", 200_000, || {
        black_box(engine::step(&flow, black_box(&city.state), &caller, "1", 0));
    });
    bench("engine::step (invalid answer)", 200_000, || {
        black_box(engine::step(&flow, black_box(&city.state), &caller, "9", 0));
    });
    bench("text::measure (Cyrillic screen)", 1_000_000, || {
        black_box(measure(black_box(&city.reply)));
    });
    bench("PhoneNumber::parse_international", 1_000_000, || {
        black_box(PhoneNumber::parse_international(black_box("+996555123456")).ok());
    });
    let privacy = Privacy::new(b"bench-key-0123456789abcdef0123456789");
    bench("Privacy::pseudonym", 500_000, || {
        black_box(privacy.pseudonym(black_box("+996555123456")));
    });
    let state = serde_json::to_vec(&city.state).unwrap();
    let sealed = privacy.seal(&state);
    bench("Privacy::seal (session state)", 500_000, || {
        black_box(privacy.seal(black_box(&state)));
    });
    bench("Privacy::open (session state)", 500_000, || {
        black_box(privacy.open(black_box(&sealed)).ok());
    });
}
