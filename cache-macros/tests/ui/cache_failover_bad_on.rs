use cachette::cache_failover;

fn is_timeout(code: &u32) -> bool {
    *code == 408
}

#[cache_failover(on = is_timeout)]
async fn weather(city: String) -> Result<u64, String> {
    Ok(city.len() as u64)
}

fn main() {}
