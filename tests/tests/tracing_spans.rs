//! A cached call runs in a debug-level `cache.call` span naming the function, key and strategy, with `cache.hit`
//! recorded; backend commands run in `cache.backend` spans.

use std::sync::LazyLock;

use cachette::{cached, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::memory);

#[cached(key = "user:{id}", cache = CACHE)]
async fn user_name(id: u64) -> String {
    format!("user {id}")
}

#[test]
fn a_cached_call_runs_in_a_span_with_its_name_key_strategy_and_outcome() {
    let ((), text) = test_support::run_capturing_logs(async {
        assert_eq!(user_name(7).await, "user 7"); // miss
        assert_eq!(user_name(7).await, "user 7"); // hit
    });
    // The close events of the `cache.call` spans themselves (nested spans' lines name their parents too).
    let calls: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("cache.call{") && !line.contains("cache.backend{"))
        .collect();
    assert_eq!(calls.len(), 2, "{text}");
    for (line, hit) in calls.iter().zip([false, true]) {
        assert!(
            line.contains("cache.fn=\"tracing_spans::user_name\""),
            "{line}"
        );
        assert!(line.contains("cache.key=\"user:7\""), "{line}");
        assert!(line.contains("cache.strategy=\"cached\""), "{line}");
        assert!(line.contains(&format!("cache.hit={hit}")), "{line}");
    }
    // The miss wrote the value: a backend command inside the call's span.
    assert!(
        text.contains("cache.backend{db.system.name=\"memory\" db.operation.name=\"set\"}"),
        "{text}"
    );
}
