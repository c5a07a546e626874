use cachette::cached;

#[cached]
struct NotAFunction;

trait Repo {
    #[cached]
    async fn declared_only(&self, id: u64) -> u64;
}

fn main() {}
