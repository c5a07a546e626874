use cachette::cached;

#[cached(key = "tenant:{self.tenant}:{id}")]
async fn free_fn(id: u64) -> u64 {
    id
}

fn main() {}
