use cachette::cached;

#[cached(soft_ttl = "10m")]
async fn without_ttl(id: u64) -> u64 {
    id
}

#[cached(ttl = "10m", soft_ttl = "1h")]
async fn longer_than_ttl(id: u64) -> u64 {
    id
}

#[cached(ttl = "1h", soft_ttl = "10m", lock = true)]
async fn with_lock(id: u64) -> u64 {
    id
}

fn main() {}
