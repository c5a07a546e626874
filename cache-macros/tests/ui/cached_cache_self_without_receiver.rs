use cachette::cached;

#[cached(cache = self.cache)]
async fn free_fn(id: u64) -> u64 {
    id
}

fn main() {}
