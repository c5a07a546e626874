use cachette::{cached, invalidates};

#[cached(tags = ["user:{usr}", "all"])]
async fn unknown_tag_arg(user: u64) -> u64 {
    user
}

#[cached(tags = "user:{user")]
async fn bad_tag_template(user: u64) -> u64 {
    user
}

#[cached(tags = [user])]
async fn tag_not_a_literal(user: u64) -> u64 {
    user
}

#[cached(tags = ["tenant:{self.tenant}"])]
async fn tag_self_without_receiver(user: u64) -> u64 {
    user
}

#[cached(time_condition = "0s")]
async fn zero_time_condition(user: u64) -> u64 {
    user
}

#[cached(time_condition = 1.5)]
async fn fractional_time_condition(user: u64) -> u64 {
    user
}

#[cached(time_condition = Some(std::time::Duration::from_secs(1)))]
async fn time_condition_wrong_type(user: u64) -> u64 {
    user
}

#[invalidates(tag = "user:{id}")]
async fn invalidate_unknown_tag_arg(user: u64) -> Result<(), String> {
    let _ = user;
    Ok(())
}

fn main() {}
