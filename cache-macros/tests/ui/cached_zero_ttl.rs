use cachette::cached;

#[cached(ttl = "0s")]
async fn zero_string(x: u64) -> u64 {
    x
}

#[cached(ttl = 0)]
async fn zero_int(x: u64) -> u64 {
    x
}

fn main() {}
