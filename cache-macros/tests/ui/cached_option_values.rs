use cachette::cached;

#[cached(key = 5)]
async fn key_not_string(x: u64) -> u64 {
    x
}

#[cached(cache_err = "yes")]
async fn bool_not_bool(x: u64) -> Result<u64, String> {
    Ok(x)
}

#[cached(skip = x)]
async fn skip_not_list(x: u64) -> u64 {
    x
}

#[cached(ttl)]
async fn ttl_without_value(x: u64) -> u64 {
    x
}

#[cached(crate = "cache_core")]
async fn crate_not_path(x: u64) -> u64 {
    x
}

#[cached(prefix(a))]
async fn prefix_list(x: u64) -> u64 {
    x
}

fn main() {}
