// `companions(...)` names companions; a misspelt one is reported with the list, a repeated one too.
use cachette::cached;

#[cached(ttl = "1m", companions(key, refesh))]
async fn first(id: u64) -> u64 {
    id
}

#[cached(ttl = "1m", companions(peek, peek))]
async fn second(id: u64) -> u64 {
    id
}

fn main() {}
