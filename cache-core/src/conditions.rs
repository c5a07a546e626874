//! Ready-made `condition = ...` predicates for cached functions.
//!
//! ```
//! use cache_core::conditions::{is_ok, not_none};
//! assert!(not_none(&Some(1)));
//! assert!(!is_ok(&Err::<u8, ()>(())));
//! ```

/// Store only `Some` values.
pub fn not_none<T>(value: &Option<T>) -> bool {
    value.is_some()
}

/// Store only `Ok` values (what `Result` functions do by default; useful with `cache_err = true` off).
pub fn is_ok<T, E>(value: &Result<T, E>) -> bool {
    value.is_ok()
}

/// Store only non-empty collections and strings.
pub fn not_empty<T: AsRef<[U]>, U>(value: &T) -> bool {
    !value.as_ref().is_empty()
}
