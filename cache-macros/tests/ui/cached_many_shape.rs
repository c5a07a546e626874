// `#[cached_many]` takes one `ids: &[T]` argument and returns `Vec<V>`.
use cachette::cached_many;

#[cached_many]
async fn two_args(ids: &[u64], extra: u8) -> Vec<u64> {
    let _ = extra;
    ids.to_vec()
}

#[cached_many]
async fn not_a_vec(ids: &[u64]) -> Option<u64> {
    ids.first().copied()
}

#[cached_many(key = "user:{id}")]
async fn unknown_name(ids: &[u64]) -> Vec<u64> {
    ids.to_vec()
}

fn main() {}
