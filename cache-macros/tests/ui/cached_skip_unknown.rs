use cachette::cached;

#[cached(skip(conection))]
async fn typo(connection: u64, id: u64) -> u64 {
    connection + id
}

#[cached(skip(self))]
async fn skip_self(id: u64) -> u64 {
    id
}

fn main() {}
