use cachette::cached;

#[cached]
async fn opaque(x: u64) -> impl std::fmt::Debug {
    x
}

fn main() {}
