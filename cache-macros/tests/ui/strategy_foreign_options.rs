use cachette::{cache_early, cache_failover, cache_hit, cached};

#[cached(ttl = "1h", early_ttl = "10m")]
async fn early_option_on_cached(id: u64) -> u64 {
    id
}

#[cache_early(ttl = "1h", on = is_timeout, lock = true)]
async fn failover_and_lock_options_on_early(id: u64) -> u64 {
    id
}

#[cache_hit(hits = 3, background = false)]
async fn early_option_on_hit(id: u64) -> u64 {
    id
}

#[cache_failover(hits = 3, backgrund = true)]
async fn typos(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn is_timeout(_: &String) -> bool {
    true
}

fn main() {}
