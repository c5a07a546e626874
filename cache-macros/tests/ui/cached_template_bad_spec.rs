use cachette::cached;

#[cached(key = "user:{id:hsh}")]
async fn typo(id: u64) -> u64 {
    id
}

#[cached(key = "user:<id:base64>")]
async fn unknown(id: u64) -> u64 {
    id
}

fn main() {}
