use cachette::cached;

fn accepts_strings(value: &String) -> bool {
    !value.is_empty()
}

#[cached(condition = accepts_strings)]
async fn wrong_condition(id: u64) -> u64 {
    id
}

fn main() {}
