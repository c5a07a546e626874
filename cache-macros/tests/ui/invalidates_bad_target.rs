use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(get_user)]
async fn bare_path(id: u64) -> u64 {
    id
}

#[invalidates(get_user(.., id))]
async fn range_with_args(id: u64) -> u64 {
    id
}

#[invalidates(id + 1)]
async fn arithmetic(id: u64) -> u64 {
    id
}

#[invalidates(|| get_user(id))]
async fn closure(id: u64) -> u64 {
    id
}

#[invalidates(42)]
async fn integer(id: u64) -> u64 {
    id
}

fn main() {}
