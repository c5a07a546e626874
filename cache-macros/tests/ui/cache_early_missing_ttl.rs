use cachette::cache_early;

#[cache_early]
async fn rates() -> u64 {
    1
}

#[cache_early(early_ttl = "1m")]
async fn rates_without_ttl() -> u64 {
    1
}

fn main() {}
