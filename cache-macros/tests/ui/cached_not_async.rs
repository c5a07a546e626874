use cachette::cached;

#[cached]
fn not_async(x: u64) -> u64 {
    x
}

#[cached]
const fn constant(x: u64) -> u64 {
    x
}

#[cached]
async unsafe fn not_safe(x: u64) -> u64 {
    x
}

#[cached]
extern "C" fn external(x: u64) -> u64 {
    x
}

fn main() {}
