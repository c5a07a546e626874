use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> u64 {
    id
}

// A sync fn's targets are sync cached fns (it blocks on their hidden async invalidation after its body); an async
// cached fn has none, so the target is not found.
#[invalidates(get_user(id))]
fn update_user(id: u64) -> u64 {
    id
}

fn main() {}
