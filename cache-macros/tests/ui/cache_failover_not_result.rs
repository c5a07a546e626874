use cachette::cache_failover;

#[cache_failover(ttl = "1h")]
async fn plain(id: u64) -> u64 {
    id
}

#[cache_failover(ttl = "1h", result = false)]
async fn told_not_result(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cache_failover(ttl = "1h", cache_err = true, strict)]
async fn with_cached_options(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
