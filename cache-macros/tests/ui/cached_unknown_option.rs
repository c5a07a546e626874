use cachette::cached;

#[cached(tll = "1h")]
async fn typo(x: u64) -> u64 {
    x
}

#[cached(frobnicate = true)]
async fn unknown(x: u64) -> u64 {
    x
}

#[cached("1h")]
async fn positional(x: u64) -> u64 {
    x
}

fn main() {}
