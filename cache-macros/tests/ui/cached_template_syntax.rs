use cachette::cached;

#[cached(key = "user:{id")]
async fn unclosed(id: u64) -> u64 {
    id
}

#[cached(key = "user:<id")]
async fn unclosed_angle(id: u64) -> u64 {
    id
}

#[cached(key = "user:id}")]
async fn unmatched(id: u64) -> u64 {
    id
}

#[cached(key = "user:{}")]
async fn empty(id: u64) -> u64 {
    id
}

#[cached(key = "user:{id + 1}")]
async fn expression(id: u64) -> u64 {
    id
}

#[cached(key = "user:{name.get(1)}")]
async fn method_with_args(name: String) -> String {
    name
}

fn main() {}
