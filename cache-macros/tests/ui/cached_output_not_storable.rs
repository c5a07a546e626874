// A stored value missing one derive gets one error, at the return type, with `Storable`'s message naming the
// derives.
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

// Only the `Ok` of a `Result` is stored: the error names `Account`, not the `Result`.
#[cached(ttl = "1m")]
async fn account_or_error(id: u64) -> Result<Account, String> {
    Ok(Account { id })
}

// A generic output without the bounds: the `Storable` message lists them.
#[cached(ttl = "1m")]
async fn echo<T: cachette::KeyArg + Send + Sync>(value: T) -> T {
    value
}

fn main() {}
