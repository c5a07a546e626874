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

#[cached(key = "orders", namespace = "tenant:{tenant}")]
async fn namespaced(tenant_id: u64) -> u64 {
    tenant_id
}

#[cachette::invalidates(namespace = "tenant:{tenant}")]
async fn clears(tenant_id: u64) {
    let _ = tenant_id;
}

fn main() {}
