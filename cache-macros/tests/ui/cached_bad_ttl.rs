use cachette::cached;

#[cached(ttl = "3 parsecs")]
async fn unknown_unit(x: u64) -> u64 {
    x
}

#[cached(ttl = "soon")]
async fn not_a_duration(x: u64) -> u64 {
    x
}

#[cached(ttl = 1.5)]
async fn fractional(x: u64) -> u64 {
    x
}

#[cached(ttl = true)]
async fn boolean(x: u64) -> u64 {
    x
}

#[cached(ttl = "never")]
async fn never(x: u64) -> u64 {
    x
}

fn main() {}
