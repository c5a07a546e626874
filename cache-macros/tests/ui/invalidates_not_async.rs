use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(get_user(id))]
fn update_user(id: u64) -> u64 {
    id
}

fn main() {}
