use cachette::cache_early;

#[cache_early(ttl = "10m", early_ttl = "10m")]
async fn equal() -> u64 {
    1
}

#[cache_early(ttl = 60, early_ttl = "2m")]
async fn longer() -> u64 {
    1
}

#[cache_early(ttl = "10m", early_ttl = "0s")]
async fn zero() -> u64 {
    1
}

fn main() {}
