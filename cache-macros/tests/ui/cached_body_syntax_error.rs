// A syntax error inside the body is reported by rustc alone: the macro does not parse the body.
use cachette::cached;

#[cached(ttl = "1m")]
async fn answer(id: u64) -> u64 {
    let doubled = id * ;
    doubled
}

fn main() {}
