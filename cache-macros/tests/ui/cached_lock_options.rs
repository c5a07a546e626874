use cachette::{cache_locked, cached};

#[cached(ttl = "1h", lock_ttl = "5s", lock_wait = "1s")]
async fn without_lock(id: u64) -> u64 {
    id
}

#[cached(ttl = "1h", lock = false, lock_ttl = "5s")]
async fn lock_off(id: u64) -> u64 {
    id
}

#[cache_locked(ttl = "1h", lock = true, soft_ttl = "1m")]
async fn sugar_with_cached_options(id: u64) -> u64 {
    id
}

#[cache_locked(lock_ttl = "soon")]
async fn bad_duration(id: u64) -> u64 {
    id
}

fn main() {}
