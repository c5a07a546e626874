use cachette::{circuit_breaker, locked, rate_limit, CircuitOpen, Locked, RateLimited};

#[derive(Debug)]
pub struct AppError;
impl From<Locked> for AppError {
    fn from(_: Locked) -> Self {
        AppError
    }
}
impl From<RateLimited> for AppError {
    fn from(_: RateLimited) -> Self {
        AppError
    }
}
impl From<CircuitOpen> for AppError {
    fn from(_: CircuitOpen) -> Self {
        AppError
    }
}

#[locked(ttl = "30s", wiat = false)]
async fn misspelt() -> Result<(), AppError> {
    Ok(())
}

#[locked(wait = false, timeout = "5s")]
async fn timeout_without_waiting() -> Result<(), AppError> {
    Ok(())
}

#[locked(key = "job:{nope}")]
async fn unknown_key_arg(id: u32) -> Result<u32, AppError> {
    Ok(id)
}

#[locked]
fn not_async() -> Result<(), AppError> {
    Ok(())
}

#[rate_limit(period = "1m")]
async fn no_limit() -> Result<(), AppError> {
    Ok(())
}

#[rate_limit(limit = 0, period = "1m", algorithm = "leaky")]
async fn zero_and_unknown_algorithm() -> Result<(), AppError> {
    Ok(())
}

#[rate_limit(limit = 10, period = "1m")]
async fn returns_nothing() {}

#[circuit_breaker(errors_rate = 5, period = "1m", half_open_ratio = 0.0)]
async fn rate_over_one() -> Result<(), AppError> {
    Ok(())
}

#[circuit_breaker(errors_rate = 0.1)]
async fn no_period() -> Result<(), AppError> {
    Ok(())
}

fn main() {}
