use cachette::invalidates;

#[invalidates()]
async fn nothing(id: u64) -> u64 {
    id
}

#[invalidates(cache = cachette::global())]
async fn only_options(id: u64) -> u64 {
    id
}

fn main() {}
