use cachette::{cached, invalidates};

#[cached]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidates(get_user(id), cahce = cachette::global())]
async fn typo(id: u64) -> u64 {
    id
}

#[invalidates(get_user(id), result = true, result = false)]
async fn duplicate(id: u64) -> u64 {
    id
}

fn main() {}
