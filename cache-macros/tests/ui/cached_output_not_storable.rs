// A stored value missing one derive gets one error, at the return type, naming the derive.
use cachette::cached;
use serde::Serialize;

#[derive(Clone, Serialize)]
pub struct Account {
    pub id: u64,
}

#[cached(ttl = "1m")]
async fn account(id: u64) -> Account {
    Account { id }
}

// A generic output without the bounds: the `Storable` message lists them.
#[cached(ttl = "1m")]
async fn echo<T: cachette::KeyArg + Send + Sync>(value: T) -> T {
    value
}

fn main() {}
