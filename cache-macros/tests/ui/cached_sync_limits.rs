use cachette::cached;

#[cached(ttl = "1h", lock = true)]
fn locked_sync(id: u64) -> u64 {
    id
}

#[cached(ttl = "1h", companions = false)]
fn inline_sync(id: u64) -> u64 {
    id
}

#[cached(region = "users")]
fn region_sync(id: u64) -> u64 {
    id
}

#[cachette::cache_early(ttl = "1h")]
fn early_sync(id: u64) -> u64 {
    id
}

fn main() {}
