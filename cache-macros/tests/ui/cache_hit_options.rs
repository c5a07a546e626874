use cachette::cache_hit;

#[cache_hit(ttl = "1h")]
async fn without_hits(id: u64) -> u64 {
    id
}

#[cache_hit(hits = 10, update_after = 10)]
async fn update_too_late(id: u64) -> u64 {
    id
}

#[cache_hit(hits = 0)]
async fn zero_hits(id: u64) -> u64 {
    id
}

#[cache_hit(hits = "many")]
async fn not_a_number(id: u64) -> u64 {
    id
}

#[cache_hit(hits = 10)]
async fn borrowed(name: &str) -> usize {
    name.len()
}

fn main() {}
