use cachette::{circuit_breaker, locked, rate_limit};

#[derive(Debug)]
pub struct PlainError;

#[locked(wait = false)]
async fn no_from_locked() -> Result<(), PlainError> {
    Ok(())
}

#[rate_limit(limit = 10, period = "1m")]
async fn no_from_rate_limited() -> Result<(), PlainError> {
    Ok(())
}

#[circuit_breaker(errors_rate = 0.5, period = "1m")]
async fn no_from_circuit_open() -> Result<(), PlainError> {
    Ok(())
}

fn main() {}
