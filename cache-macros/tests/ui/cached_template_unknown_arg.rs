use cachette::cached;

struct User {
    id: u64,
}

#[cached(key = "user:{usr.id}:{account_id}")]
async fn typo(user: &User, account_id: u64) -> u64 {
    user.id + account_id
}

#[cached(key = "user:<nobody>")]
async fn angle(user: &User) -> u64 {
    user.id
}

fn main() {}
