//! How a function's output maps to what is stored: the whole value, or only the `Ok` of a `Result`.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CacheError;

/// Decides which part of a function's output `Out` is stored and how a stored value becomes an output again.
///
/// The macros pick the shape from the return type: [`OkOnly`] for `Result`, [`Plain`] otherwise.
///
/// ```
/// use cache_core::shape::{OkOnly, Shape};
/// let ok: Result<u8, String> = Ok(1);
/// let err: Result<u8, String> = Err("no".into());
/// assert_eq!(<OkOnly as Shape<Result<u8, String>>>::stored(&ok), Some(&1));
/// assert_eq!(<OkOnly as Shape<Result<u8, String>>>::stored(&err), None);
/// ```
pub trait Shape<Out> {
    /// The stored type. `Clone + Send + Sync + 'static` because the in-memory backend keeps a decoded copy beside
    /// the bytes and hands out clones of it (as `cached` and moka do), which makes a memory hit skip decoding.
    type Stored: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// The part of `out` to store, if any.
    fn stored(out: &Out) -> Option<&Self::Stored>;

    /// Turns a stored value back into an output.
    fn rebuild(stored: Self::Stored) -> Out;

    /// In strict mode, the output that reports a backend failure; `Err(error)` hands the error back, which means
    /// fail open (run the body).
    fn on_backend_error(error: CacheError) -> Result<Out, CacheError> {
        Err(error)
    }
}

/// Stores the whole output (including `None`, and `Err` when a `Result` is stored whole).
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

/// Stores only the `Ok` of a `Result`; errors are never cached.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkOnly;

/// Like [`OkOnly`], but a backend failure is returned as `Err(E::from(CacheError))` instead of running the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictOk;

/// What a stored value must be; see [`Shape::Stored`].
///
/// Implemented for every type with these bounds; a type without one of them gets this trait's message, at the
/// return type of the `#[cached]` fn that stores it.
///
/// ```
/// use cache_core::shape::Storable;
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Account {
///     id: u64,
/// }
///
/// fn stores<T: Storable>() {}
/// stores::<Account>();
/// stores::<Option<Vec<String>>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached: a stored value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`",
    label = "stored in the cache",
    note = "add `#[derive(Clone, serde::Serialize, serde::Deserialize)]` to the type, or bound a generic type with `cachette::Storable`"
)]
pub trait Storable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Storable for T {}

impl<T: Storable> Shape<T> for Plain {
    type Stored = T;
    fn stored(out: &T) -> Option<&T> {
        Some(out)
    }
    fn rebuild(stored: T) -> T {
        stored
    }
}

impl<T: Storable, E> Shape<Result<T, E>> for OkOnly {
    type Stored = T;
    fn stored(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn rebuild(stored: T) -> Result<T, E> {
        Ok(stored)
    }
}

impl<T: Storable, E: From<CacheError>> Shape<Result<T, E>> for StrictOk {
    type Stored = T;
    fn stored(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn rebuild(stored: T) -> Result<T, E> {
        Ok(stored)
    }
    fn on_backend_error(error: CacheError) -> Result<Result<T, E>, CacheError> {
        Ok(Err(E::from(error)))
    }
}
