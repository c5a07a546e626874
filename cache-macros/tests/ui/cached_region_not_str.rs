// `region` names a region with a string literal.
use cachette::cached;

#[cached(region = users)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
