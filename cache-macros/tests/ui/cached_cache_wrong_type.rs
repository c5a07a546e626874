use cachette::cached;

static NOT_A_CACHE: u32 = 5;

#[cached(cache = NOT_A_CACHE)]
async fn wrong_cache(id: u64) -> u64 {
    id
}

fn main() {}
