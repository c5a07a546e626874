use std::borrow::Cow;

use cachette::cache_early;

#[cache_early(ttl = "10m")]
async fn by_ref(name: &str, id: u64, tags: Option<&[String]>) -> u64 {
    let _ = (name, tags);
    id
}

#[cache_early(ttl = "10m")]
async fn with_lifetime<'a>(name: Cow<'a, str>, label: impl AsRef<str> + 'a) -> usize {
    name.len() + label.as_ref().len()
}

// Fine: owned arguments, and a function pointer whose `&` is higher-ranked.
#[cache_early(ttl = "10m", skip(check))]
async fn owned(name: String, check: fn(&str) -> bool) -> bool {
    check(&name)
}

struct Service;

impl Service {
    #[cache_early(ttl = "10m")]
    async fn method(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
