//! A cache on local disk (feature `disk`, `disk:///path/to/dir?max_bytes=…`): SQLite through `rusqlite`
//! (bundled, so no system library), like cashews' disk backend, for a cache that survives restarts and is shared
//! by the processes of one machine.
//!
//! - One file (`cache.sqlite3` in the directory) in WAL mode, so readers never wait for a writer and several
//!   processes can use it at once (SQLite's own locking; a busy file is retried for up to the command timeout).
//! - Every call runs on Tokio's blocking pool (`spawn_blocking`), never on a runtime worker.
//! - Expiry: a column of wall-clock milliseconds (processes agree on it), checked on every read, with an index
//!   and a sweep of expired rows every few hundred writes.
//! - Byte bound (`max_bytes`): the total size of keys and values is kept by triggers in a one-row table, so every
//!   process sees the same total; past the bound, the least recently used rows go first. Reads record their time
//!   at most once a second per key, so a hot key does not turn every read into a write.
//! - Patterns: `scan`/`delete_match` take Redis globs; they are translated to SQLite `GLOB` (which has no `\`
//!   escape) to narrow the rows, and every candidate is checked again with the core matcher, so the keys found
//!   are exactly those Redis would find.
//! - Failures (disk full, a removed directory, a corrupt file) are [`BackendError`]s, so cached functions fail
//!   open and run their bodies.
//!
//! Capabilities: scans, counters, TTLs, compare-and-set and locks; no sets (tags need Redis or memory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use cache_core::{
    Backend, BackendError, Capabilities, CasOutcome, CasToken, GlobMatcher, KeyTtl, SetMode,
};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long a call waits for another process's write lock before it fails (and the cache fails open).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Writes between sweeps of expired rows.
const SWEEP_EVERY: u64 = 256;
/// A read records its time only when the last recorded one is older than this (LRU precision).
const TOUCH_AFTER_MS: i64 = 1_000;
/// What a row costs beyond its key and value (SQLite's row and index overhead, roughly).
const ROW_OVERHEAD: i64 = 64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    expires_at INTEGER,
    accessed_at INTEGER NOT NULL,
    size INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expiry ON entries(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_access ON entries(accessed_at);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries
    BEGIN UPDATE totals SET bytes = bytes + NEW.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF size ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0; END;
";

/// The disk backend. Cheap to clone; clones share the connection.
///
/// # Example
/// ```
/// use cache_backends::DiskBackend;
/// use cache_core::{Backend, SetMode};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("cachette-doc-{}", std::process::id()));
/// let disk = DiskBackend::builder(&dir).max_bytes(64 << 20).open()?;
/// disk.set("greeting", "hello".into(), None, SetMode::Always).await?;
/// assert_eq!(disk.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// # drop(disk); let _ = std::fs::remove_dir_all(&dir);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DiskBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
    max_bytes: Option<u64>,
    writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBackend")
            .field("path", &self.inner.path)
            .field("max_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Configures a [`DiskBackend`].
///
/// # Example
/// ```
/// let builder = cache_backends::DiskBackend::builder("/var/cache/myapp").max_bytes(1 << 30);
/// # let _ = builder;
/// ```
#[derive(Debug, Clone)]
pub struct DiskBackendBuilder {
    dir: PathBuf,
    max_bytes: Option<u64>,
}

fn sql_error(error: rusqlite::Error) -> BackendError {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            BackendError::Timeout(BUSY_TIMEOUT)
        }
        Some(ErrorCode::DiskFull | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure) => {
            BackendError::Connection(format!("disk cache: {error}"))
        }
        _ => BackendError::Other(format!("disk cache: {error}")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn expiry(ttl: Option<Duration>, now: i64) -> Option<i64> {
    ttl.map(|ttl| now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)))
}

fn new_version() -> i64 {
    let mut bytes = [0u8; 8];
    // Without randomness, the clock alone still tells writes apart in practice.
    if getrandom::fill(&mut bytes).is_err() {
        return now_ms();
    }
    i64::from_le_bytes(bytes) & i64::MAX
}

fn size_of(key: &str, value: &[u8]) -> i64 {
    i64::try_from(key.len() + value.len()).unwrap_or(i64::MAX) + ROW_OVERHEAD
}

/// A Redis glob as an SQLite `GLOB` that matches at least the same keys (SQLite's has no `\` escape: an escaped
/// character becomes a one-character class). Candidates are checked again with the core matcher.
fn sqlite_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if !in_class => match chars.next() {
                Some(escaped @ ('*' | '?' | '[' | ']')) => {
                    out.push('[');
                    out.push(escaped);
                    out.push(']');
                }
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            '\\' => {
                // Inside a class SQLite has no escape either: widen to "any character" and let the exact check
                // decide.
                return String::from("*");
            }
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    if in_class {
        // An unterminated class: Redis reads it its own way; scan everything and let the matcher decide.
        return String::from("*");
    }
    out
}

impl DiskBackendBuilder {
    /// At most this many bytes of keys and values (plus a small per-row overhead); least recently used rows go
    /// first. Unbounded by default.
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::DiskBackend::builder("/tmp/cache").max_bytes(512 << 20);
    /// # let _ = builder;
    /// ```
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Opens (creating if needed) the directory and its database file.
    ///
    /// # Example
    /// ```
    /// let dir = std::env::temp_dir().join(format!("cachette-open-{}", std::process::id()));
    /// let disk = cache_backends::DiskBackend::builder(&dir).open().unwrap();
    /// # drop(disk); let _ = std::fs::remove_dir_all(&dir);
    /// ```
    pub fn open(self) -> Result<DiskBackend, BackendError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            BackendError::Connection(format!("disk cache directory {}: {e}", self.dir.display()))
        })?;
        let path = self.dir.join("cache.sqlite3");
        let connection = Connection::open(&path).map_err(sql_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_error)?;
        // WAL with NORMAL sync: durable across process crashes, may lose the last writes on a power loss — a
        // cache can afford that.
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_error)?;
        connection.execute_batch(SCHEMA).map_err(sql_error)?;
        Ok(DiskBackend {
            inner: Arc::new(Inner {
                path,
                connection: Mutex::new(connection),
                max_bytes: self.max_bytes,
                writes: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }
}

impl DiskBackend {
    /// A builder for a cache in `dir` (created if missing; the file is `cache.sqlite3`).
    ///
    /// # Example
    /// ```
    /// let builder = cache_backends::DiskBackend::builder("/var/cache/myapp");
    /// # let _ = builder;
    /// ```
    pub fn builder(dir: impl AsRef<Path>) -> DiskBackendBuilder {
        DiskBackendBuilder {
            dir: dir.as_ref().to_owned(),
            max_bytes: None,
        }
    }

    /// The database file.
    ///
    /// # Example
    /// ```
    /// let dir = std::env::temp_dir().join(format!("cachette-path-{}", std::process::id()));
    /// let disk = cache_backends::DiskBackend::builder(&dir).open().unwrap();
    /// assert!(disk.path().ends_with("cache.sqlite3"));
    /// # drop(disk); let _ = std::fs::remove_dir_all(&dir);
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes of keys and values held (with the per-row overhead), as every process sharing the file sees it.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = std::env::temp_dir().join(format!("cachette-bytes-{}", std::process::id()));
    /// let disk = cache_backends::DiskBackend::builder(&dir).open().unwrap();
    /// assert_eq!(disk.used_bytes().await.unwrap(), 0);
    /// # drop(disk); let _ = std::fs::remove_dir_all(&dir);
    /// # }
    /// ```
    pub async fn used_bytes(&self) -> Result<u64, BackendError> {
        self.run(|c| {
            let bytes: i64 = c
                .prepare_cached("SELECT bytes FROM totals WHERE id = 0")
                .map_err(sql_error)?
                .query_row([], |r| r.get(0))
                .map_err(sql_error)?;
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
        .await
    }

    /// Runs `work` on the connection on Tokio's blocking pool.
    async fn run<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, BackendError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = inner.connection.lock();
            work(&mut connection)
        })
        .await
        .map_err(|e| BackendError::Other(format!("disk cache task failed: {e}")))?
    }

    /// After a write: a sweep of expired rows now and then, and eviction down to the byte bound.
    fn after_write(inner: &Inner, connection: &Connection) -> Result<(), BackendError> {
        let writes = inner
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if writes.is_multiple_of(SWEEP_EVERY) {
            connection
                .prepare_cached(
                    "DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                )
                .map_err(sql_error)?
                .execute(params![now_ms()])
                .map_err(sql_error)?;
        }
        let Some(max) = inner.max_bytes else {
            return Ok(());
        };
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        loop {
            let bytes: i64 = connection
                .prepare_cached("SELECT bytes FROM totals WHERE id = 0")
                .map_err(sql_error)?
                .query_row([], |r| r.get(0))
                .map_err(sql_error)?;
            if bytes <= max {
                return Ok(());
            }
            // Expired rows first, then the least recently used, a batch at a time.
            let removed = connection
                .prepare_cached(
                    "DELETE FROM entries WHERE key IN (
                        SELECT key FROM entries
                        ORDER BY (expires_at IS NOT NULL AND expires_at <= ?1) DESC, accessed_at
                        LIMIT 32)",
                )
                .map_err(sql_error)?
                .execute(params![now_ms()])
                .map_err(sql_error)?;
            if removed == 0 {
                return Ok(());
            }
        }
    }

    /// Writes one row in its own transaction: `mode` decides against the live row, if any.
    fn write_row(
        inner: &Inner,
        connection: &mut Connection,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let now = now_ms();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_error)?;
        let live = live_row_exists(&tx, key, now)?;
        let write = match mode {
            SetMode::IfAbsent => !live,
            SetMode::IfPresent => live,
            _ => true,
        };
        if write {
            upsert(&tx, key, value, expiry(ttl, now), now)?;
        }
        tx.commit().map_err(sql_error)?;
        if write {
            Self::after_write(inner, connection)?;
        }
        Ok(write)
    }
}

fn live_row_exists(connection: &Connection, key: &str, now: i64) -> Result<bool, BackendError> {
    connection
        .prepare_cached(
            "SELECT 1 FROM entries WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .map_err(sql_error)?
        .query_row(params![key, now], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(sql_error)
}

fn upsert(
    connection: &Connection,
    key: &str,
    value: &[u8],
    expires_at: Option<i64>,
    now: i64,
) -> Result<(), BackendError> {
    connection.prepare_cached("INSERT INTO entries (key, value, expires_at, accessed_at, size, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,
                 accessed_at = excluded.accessed_at, size = excluded.size, version = excluded.version").map_err(sql_error)?.execute(
            params![key, value, expires_at, now, size_of(key, value), new_version()],
        )
        .map(drop)
        .map_err(sql_error)
}

/// A live row's value and version, recording the read for the LRU order (at most once a second per key).
fn read_row(
    connection: &Connection,
    key: &str,
    now: i64,
) -> Result<Option<(Bytes, i64)>, BackendError> {
    let row = connection
        .prepare_cached(
            "SELECT value, version, accessed_at FROM entries
             WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .map_err(sql_error)?
        .query_row(params![key, now], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()
        .map_err(sql_error)?;
    let Some((value, version, accessed_at)) = row else {
        return Ok(None);
    };
    if now - accessed_at > TOUCH_AFTER_MS {
        // Best effort: a busy file must not turn a hit into an error.
        let _ = connection
            .prepare_cached("UPDATE entries SET accessed_at = ?2 WHERE key = ?1")
            .map_err(sql_error)?
            .execute(params![key, now]);
    }
    Ok(Some((Bytes::from(value), version)))
}

/// The keys matching a Redis glob (exactly, by the core matcher), live at `now`.
fn matching_keys(
    connection: &Connection,
    pattern: &str,
    now: i64,
) -> Result<Vec<String>, BackendError> {
    let matcher = GlobMatcher::new(pattern);
    let mut statement = connection
        .prepare(
            "SELECT key FROM entries WHERE key GLOB ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .map_err(sql_error)?;
    let rows = statement
        .query_map(params![sqlite_glob(pattern), now], |r| {
            r.get::<_, String>(0)
        })
        .map_err(sql_error)?;
    let mut keys = Vec::new();
    for key in rows {
        let key = key.map_err(sql_error)?;
        if matcher.is_match(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

#[async_trait]
impl Backend for DiskBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let key = key.to_owned();
        self.run(move |c| Ok(read_row(c, &key, now_ms())?.map(|(value, _)| value)))
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, BackendError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.run(move |c| {
            let now = now_ms();
            keys.iter()
                .map(|key| Ok(read_row(c, key, now)?.map(|(value, _)| value)))
                .collect()
        })
        .await
    }

    async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<bool, BackendError> {
        let (key, inner) = (key.to_owned(), self.inner.clone());
        self.run(move |c| Self::write_row(&inner, c, &key, &value, ttl, mode))
            .await
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        ttl: Option<Duration>,
    ) -> Result<(), BackendError> {
        let entries: Vec<(String, Bytes)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let inner = self.inner.clone();
        self.run(move |c| {
            let now = now_ms();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            for (key, value) in &entries {
                upsert(&tx, key, value, expiry(ttl, now), now)?;
            }
            tx.commit().map_err(sql_error)?;
            Self::after_write(&inner, c)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let live = live_row_exists(c, &key, now)?;
            c.prepare_cached("DELETE FROM entries WHERE key = ?1")
                .map_err(sql_error)?
                .execute(params![key])
                .map_err(sql_error)?;
            Ok(live)
        })
        .await
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<u64, BackendError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        self.run(move |c| {
            let now = now_ms();
            let tx = c.transaction().map_err(sql_error)?;
            let mut deleted = 0;
            for key in &keys {
                deleted += u64::from(live_row_exists(&tx, key, now)?);
                tx.prepare_cached("DELETE FROM entries WHERE key = ?1")
                    .map_err(sql_error)?
                    .execute(params![key])
                    .map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(deleted)
        })
        .await
    }

    async fn delete_match(&self, pattern: &str) -> Result<u64, BackendError> {
        let pattern = pattern.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let keys = matching_keys(&tx, &pattern, now)?;
            for key in &keys {
                tx.prepare_cached("DELETE FROM entries WHERE key = ?1")
                    .map_err(sql_error)?
                    .execute(params![key])
                    .map_err(sql_error)?;
            }
            tx.commit().map_err(sql_error)?;
            Ok(keys.len() as u64)
        })
        .await
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, BackendError> {
        let pattern = pattern.to_owned();
        self.run(move |c| matching_keys(c, &pattern, now_ms()))
            .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, BackendError> {
        let (key, inner) = (key.to_owned(), self.inner.clone());
        self.run(move |c| {
            let now = now_ms();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let current = tx
                .prepare_cached(
                    "SELECT value, expires_at FROM entries
                     WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .map_err(sql_error)?
                .query_row(params![key, now], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<i64>>(1)?))
                })
                .optional()
                .map_err(sql_error)?;
            let (value, expires_at) = match current {
                Some((bytes, expires_at)) => {
                    let value = std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| {
                            BackendError::WrongType(format!("value at {key:?} is not an integer"))
                        })?;
                    (value, expires_at)
                }
                None => (0, expiry(ttl, now)),
            };
            let next = value
                .checked_add(by)
                .ok_or_else(|| BackendError::Invalid(format!("increment of {key:?} overflows")))?;
            upsert(&tx, &key, next.to_string().as_bytes(), expires_at, now)?;
            tx.commit().map_err(sql_error)?;
            Self::after_write(&inner, c)?;
            Ok(next)
        })
        .await
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let changed = c
                .prepare_cached(
                    "UPDATE entries SET expires_at = ?2
                     WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?3)",
                )
                .map_err(sql_error)?
                .execute(params![key, expiry(Some(ttl), now), now])
                .map_err(sql_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn persist(&self, key: &str) -> Result<bool, BackendError> {
        let key = key.to_owned();
        self.run(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE entries SET expires_at = NULL
                     WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .map_err(sql_error)?
                .execute(params![key, now_ms()])
                .map_err(sql_error)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let key = key.to_owned();
        self.run(move |c| {
            let now = now_ms();
            let row = c
                .prepare_cached(
                    "SELECT expires_at FROM entries
                     WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )
                .map_err(sql_error)?
                .query_row(params![key, now], |r| r.get::<_, Option<i64>>(0))
                .optional()
                .map_err(sql_error)?;
            Ok(match row {
                None => KeyTtl::Missing,
                Some(None) => KeyTtl::Persistent,
                Some(Some(at)) => {
                    KeyTtl::Remaining(Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
                }
            })
        })
        .await
    }

    async fn gets(&self, key: &str) -> Result<Option<(Bytes, CasToken)>, BackendError> {
        let key = key.to_owned();
        self.run(move |c| {
            Ok(read_row(c, &key, now_ms())?
                .map(|(value, version)| (value, CasToken::new(version.unsigned_abs()))))
        })
        .await
    }

    async fn cas(
        &self,
        key: &str,
        value: Bytes,
        token: CasToken,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, BackendError> {
        let (key, inner) = (key.to_owned(), self.inner.clone());
        self.run(move |c| {
            let now = now_ms();
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_error)?;
            let version = tx.prepare_cached("SELECT version FROM entries WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)").map_err(sql_error)?.query_row(
                    params![key, now],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(sql_error)?;
            let outcome = match version {
                None => CasOutcome::NotFound,
                Some(v) if v.unsigned_abs() != token.get() => CasOutcome::Exists,
                Some(_) => {
                    upsert(&tx, &key, &value, expiry(ttl, now), now)?;
                    CasOutcome::Stored
                }
            };
            tx.commit().map_err(sql_error)?;
            if outcome == CasOutcome::Stored {
                Self::after_write(&inner, c)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn unlock(&self, key: &str, token: &[u8]) -> Result<bool, BackendError> {
        let (key, token) = (key.to_owned(), token.to_vec());
        self.run(move |c| {
            let deleted = c
                .prepare_cached(
                    "DELETE FROM entries WHERE key = ?1 AND value = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
                )
                .map_err(sql_error)?
                .execute(params![key, token, now_ms()])
                .map_err(sql_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.run(|c| {
            c.prepare_cached("SELECT 1")
                .map_err(sql_error)?
                .query_row([], |_| Ok(()))
                .map_err(sql_error)
        })
        .await
    }

    async fn clear(&self) -> Result<(), BackendError> {
        self.run(|c| {
            c.prepare_cached("DELETE FROM entries")
                .map_err(sql_error)?
                .execute([])
                .map(drop)
                .map_err(sql_error)
        })
        .await
    }

    fn name(&self) -> &'static str {
        "disk"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::SCAN
            | Capabilities::COUNTERS
            | Capabilities::TTL
            | Capabilities::CAS
            | Capabilities::LOCKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_globs_become_sqlite_globs_that_match_at_least_the_same_keys() {
        assert_eq!(sqlite_glob("user:*"), "user:*");
        assert_eq!(sqlite_glob(r"a\*b"), "a[*]b");
        assert_eq!(sqlite_glob(r"a\?b\[c"), "a[?]b[[]c");
        assert_eq!(sqlite_glob(r"a\xb"), "axb");
        assert_eq!(sqlite_glob("[^ab]*"), "[^ab]*");
        assert_eq!(sqlite_glob("[a"), "*");
        assert_eq!(sqlite_glob(r"[\]]"), "*");
    }
}
