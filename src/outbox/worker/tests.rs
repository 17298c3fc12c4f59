use super::*;

#[test]
fn a_held_message_waits_at_most_30_s_only_while_its_channel_sends_nothing() {
    let max = Duration::from_secs(300);
    assert_eq!(hold_cap(max, false), Duration::from_secs(30));
    assert_eq!(hold_cap(max, true), max, "the channel sends others");
    assert_eq!(
        hold_cap(Duration::from_secs(10), false),
        Duration::from_secs(10)
    );
    // Eight tries of a message only this number fails span minutes.
    let base = Duration::from_secs(1);
    let least: Duration = (1..=8)
        .map(|a| backoff(base, hold_cap(max, true), a, None))
        .sum();
    assert!(least >= Duration::from_secs(127), "{least:?}");
}

#[test]
fn backoff_doubles_is_capped_jittered_and_honours_retry_after() {
    let base = Duration::from_secs(2);
    let max = Duration::from_secs(300);
    for _ in 0..100 {
        let d1 = backoff(base, max, 1, None);
        assert!(
            d1 >= Duration::from_secs(1) && d1 <= Duration::from_secs(2),
            "{d1:?}"
        );
        let d3 = backoff(base, max, 3, None);
        assert!(
            d3 >= Duration::from_secs(4) && d3 <= Duration::from_secs(8),
            "{d3:?}"
        );
        let d20 = backoff(base, max, 20, None);
        assert!(d20 <= max && d20 >= max / 2, "{d20:?}");
        let ra = backoff(base, max, 1, Some(Duration::from_secs(30)));
        assert!(ra >= Duration::from_secs(30));
    }
}
