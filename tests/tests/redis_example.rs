//! `examples/redis.rs` against a real redis-server: the setup URL installs the cache and its calls hit and miss
//! as the example says.

#[path = "../../examples/redis.rs"]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_example_hits_after_the_first_call_and_misses_after_a_rename() {
    let Some(server) = test_support::RedisServer::start() else {
        return;
    };
    let served = example::run(&server.url())
        .await
        .expect("set up from the URL");
    assert_eq!(
        served,
        [
            ("user_name(1)", false),
            ("user_name(1) again", true),
            ("exchange_rate(EUR)", false),
            ("monthly_report(3)", false),
            ("user_name(1) after rename", false),
        ]
    );
    // The values really are in this Redis, under the URL's prefix.
    let keys = server
        .command(&["KEYS", "example:*"])
        .expect("redis-cli KEYS");
    assert!(keys.contains("example:user:1"), "{keys}");
    assert!(keys.contains("monthly_report:month=3"), "{keys}");
}
