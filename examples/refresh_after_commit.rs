//! Refresh a cached read after the database commit that changed it (dogpile.cache's ORM recipe, the Rust way):
//! the write path updates rows in a transaction and, only once `commit()` succeeded, refreshes the cached read in
//! the background. A rolled-back or failed transaction refreshes nothing.
//!
//! `cargo run --example refresh_after_commit --features postgres` (PostgreSQL at `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`).

use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::cached;
use cachette::context::refresh_after_commit;
use sqlx::{PgPool, Postgres, Transaction};

/// How many times the cached read hit the database.
pub static QUERIES: AtomicUsize = AtomicUsize::new(0);

/// The table this example owns (a name per process, so parallel runs do not collide).
pub fn table() -> String {
    format!("cachette_users_{}", std::process::id())
}

/// Creates the table with one user; names are unique, checked at commit time.
pub async fn create(pool: &PgPool) -> Result<(), sqlx::Error> {
    let table = table();
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(pool)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         CONSTRAINT {table}_name UNIQUE (name) DEFERRABLE INITIALLY DEFERRED)"
    ))
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {table} VALUES (1, 'ada'), (2, 'alan')"
    ))
    .execute(pool)
    .await?;
    Ok(())
}

/// Drops the table.
pub async fn drop_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", table()))
        .execute(pool)
        .await?;
    Ok(())
}

/// The cached read: `user:<id>` for an hour.
#[cached(ttl = "1h", key = "user:{id}", companions(refresh, peek))]
pub async fn user_name(pool: PgPool, id: i64) -> Result<String, String> {
    QUERIES.fetch_add(1, Ordering::SeqCst);
    sqlx::query_scalar(&format!("SELECT name FROM {} WHERE id = $1", table()))
        .bind(id)
        .fetch_one(&pool)
        .await
        .map_err(|e| e.to_string())
}

/// Starts a transaction that renames user `id`.
async fn renaming(
    pool: &PgPool,
    id: i64,
    name: &str,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("UPDATE {} SET name = $1 WHERE id = $2", table()))
        .bind(name)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The write path: renames in a transaction; after the commit succeeded, refreshes `user_name(id)`.
pub async fn rename(pool: &PgPool, id: i64, name: &str) -> Result<(), sqlx::Error> {
    let tx = renaming(pool, id, name).await?;
    refresh_after_commit(tx.commit(), user_name_refresh(pool.clone(), id)).await
}

/// A write path that changes its mind: rolled back, so nothing is refreshed.
pub async fn rename_then_roll_back(pool: &PgPool, id: i64, name: &str) -> Result<(), sqlx::Error> {
    renaming(pool, id, name).await?.rollback().await
}

// The tests include this file as a module; `main` is only the example's.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), sqlx::Error> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let pool = PgPool::connect(&url).await?;
    create(&pool).await?;
    println!("read: {:?}", user_name(pool.clone(), 1).await);
    rename(&pool, 1, "grace").await?;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await; // the refresh runs in the background
    println!(
        "after commit, from the cache: {:?}",
        user_name_peek(pool.clone(), 1).await
    );
    rename_then_roll_back(&pool, 1, "linus").await?;
    println!(
        "after rollback, from the cache: {:?}",
        user_name_peek(pool.clone(), 1).await
    );
    drop_table(&pool).await
}
