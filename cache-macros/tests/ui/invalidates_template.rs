use cachette::invalidates;

#[invalidates("user:{usr_id}:*")]
async fn unknown_arg(user_id: u64) -> u64 {
    user_id
}

#[invalidates("user:{user_id")]
async fn unclosed(user_id: u64) -> u64 {
    user_id
}

#[invalidates("user:{self.id}")]
async fn no_receiver(user_id: u64) -> u64 {
    user_id
}

fn main() {}
