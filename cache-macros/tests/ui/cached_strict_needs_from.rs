use cachette::cached;

#[derive(Debug)]
struct MyError;

#[cached(strict = true)]
async fn strict(id: u64) -> Result<u64, MyError> {
    Ok(id)
}

fn main() {}
