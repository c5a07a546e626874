use cachette::invalidates;

async fn not_cached(id: u64) -> u64 {
    id
}

#[invalidates(not_cached(id))]
async fn update(id: u64) -> u64 {
    not_cached(id).await
}

#[invalidates(not_cached(..))]
async fn update_all(id: u64) -> u64 {
    id
}

fn main() {}
