use cachette::cached;

#[cached(ttl = "1h", key = "a:{x}", ttl = "2h")]
async fn twice(x: u64) -> u64 {
    x
}

fn main() {}
