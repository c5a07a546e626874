use cachette::{cached, strategy::FactoryTimedOut};

#[derive(Debug)]
pub struct AppError;
impl From<FactoryTimedOut> for AppError {
    fn from(_: FactoryTimedOut) -> Self {
        AppError
    }
}

#[cached(ttl = "1h", soft_timeout = "100ms")]
async fn soft_timeout_without_soft_ttl(id: u64) -> Result<u64, AppError> {
    Ok(id)
}

#[cached(ttl = "1h", soft_ttl = "10m", soft_timeout = "2s", hard_timeout = "1s")]
async fn soft_after_hard(id: u64) -> Result<u64, AppError> {
    Ok(id)
}

#[cached(ttl = "1h", lock = true, hard_timeout = "1s")]
async fn with_lock(id: u64) -> Result<u64, AppError> {
    Ok(id)
}

#[cached(ttl = "1h", hard_timeout = "1s")]
async fn not_a_result(id: u64) -> u64 {
    id
}

#[cached(ttl = "1h", hard_timeout = "1s")]
async fn borrowed(name: &str) -> Result<u64, AppError> {
    Ok(name.len() as u64)
}

#[cached(ttl = "1h", ttl_jitter = "soon")]
async fn bad_jitter(id: u64) -> u64 {
    id
}

fn main() {}
