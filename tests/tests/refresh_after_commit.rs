//! `examples/refresh_after_commit.rs` on a real PostgreSQL (127.0.0.1:5432, database `test`, or `DATABASE_URL`):
//! a committed rename refreshes the cached read in the background; a rollback or a failed commit refreshes
//! nothing. Without a server the test prints a loud SKIP line, and fails under `CI=true`.

#[path = "../../examples/refresh_after_commit.rs"]
mod example;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use sqlx::PgPool;

async fn connect() -> Option<PgPool> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let connecting = tokio::time::timeout(Duration::from_secs(5), PgPool::connect(&url)).await;
    match connecting {
        Ok(Ok(pool)) => Some(pool),
        other => {
            let why = match other {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer within 5 s".to_owned(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL at {url} is required under CI=true: {why}"
            );
            eprintln!("SKIP: refresh_after_commit needs PostgreSQL at {url}: {why}");
            None
        }
    }
}

async fn cached_name(pool: &PgPool, id: i64) -> Option<String> {
    example::user_name_peek(pool.clone(), id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_refreshes_the_cached_read_and_a_rollback_does_not() {
    let Some(pool) = connect().await else {
        return;
    };
    example::create(&pool).await.unwrap();

    assert_eq!(example::user_name(pool.clone(), 1).await.unwrap(), "ada");
    assert_eq!(example::user_name(pool.clone(), 1).await.unwrap(), "ada");
    assert_eq!(
        example::QUERIES.load(SeqCst),
        1,
        "the second read was a hit"
    );

    // Committed: the cached value becomes the new one without anyone invalidating or reading it.
    example::rename(&pool, 1, "grace").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cached_name(&pool, 1).await.as_deref() != Some("grace") {
        assert!(
            Instant::now() < deadline,
            "the refresh never stored the committed name"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(example::QUERIES.load(SeqCst), 2, "one refresh query");
    assert_eq!(example::user_name(pool.clone(), 1).await.unwrap(), "grace");

    // Rolled back: nothing is refreshed; the cache keeps the committed name.
    example::rename_then_roll_back(&pool, 1, "linus")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cached_name(&pool, 1).await.as_deref(), Some("grace"));
    assert_eq!(
        example::QUERIES.load(SeqCst),
        2,
        "no refresh after a rollback"
    );

    // A commit that fails (the deferred unique constraint: "alan" is taken) refreshes nothing either.
    let failed = example::rename(&pool, 1, "alan").await;
    assert!(
        failed.is_err(),
        "the commit must fail on the deferred constraint"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cached_name(&pool, 1).await.as_deref(), Some("grace"));
    assert_eq!(
        example::QUERIES.load(SeqCst),
        2,
        "no refresh after a failed commit"
    );

    example::drop_table(&pool).await.unwrap();
}
