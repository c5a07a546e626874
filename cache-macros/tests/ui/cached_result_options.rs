use cachette::cached;

#[cached(cache_err = true)]
async fn cache_err_without_result(x: u64) -> Option<u64> {
    Some(x)
}

#[cached(strict)]
async fn strict_without_result(x: u64) -> u64 {
    x
}

#[cached(strict = true, cache_err = true)]
async fn strict_and_cache_err(x: u64) -> Result<u64, String> {
    Ok(x)
}

fn main() {}
