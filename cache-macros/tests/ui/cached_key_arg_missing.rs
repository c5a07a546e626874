use cachette::cached;

struct Client;

#[cached]
async fn default_key(client: &Client, id: u64) -> u64 {
    let _ = client;
    id
}

struct User {
    profile: Profile,
}

struct Profile;

#[cached(key = "user:{user.profile}")]
async fn template(user: &User) -> u64 {
    let _ = user;
    1
}

fn main() {}
