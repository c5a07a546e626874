use cachette::cached;

struct Repo;

impl Repo {
    #[cached]
    async fn count(shard: u32) -> u64 {
        u64::from(shard)
    }
}

fn main() {}
