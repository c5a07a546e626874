use cachette::cached;

#[cached(ttl = "ten minutes".to_string())]
async fn wrong_type(x: u64) -> u64 {
    x
}

fn main() {}
