//! Which backend holds a key: a default backend and prefix routes (cashews' `setup(url, prefix=...)`).

use std::sync::Arc;

use crate::backend::{Backend, BackendError, Capabilities};
use crate::memory::MemoryBackend;

/// The backends of one cache, and the rule that picks one for a key: the longest route prefix the key starts
/// with, else the default.
pub(crate) struct Router {
    default: Arc<dyn Backend>,
    /// Longest prefix first, so the most specific route wins.
    routes: Vec<(String, Arc<dyn Backend>)>,
    /// Whether any backend is the embedded memory backend: when none is, [`Router::route`] skips the downcasts.
    has_memory: bool,
}

impl Router {
    pub(crate) fn new(
        default: Arc<dyn Backend>,
        mut routes: Vec<(String, Arc<dyn Backend>)>,
    ) -> Self {
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let has_memory = std::iter::once(&default)
            .chain(routes.iter().map(|(_, backend)| backend))
            .any(|backend| embedded_memory(backend).is_some());
        Self {
            default,
            routes,
            has_memory,
        }
    }

    /// The same routes over backends replaced by `wrap` (namespace views wrap every backend).
    pub(crate) fn map(&self, wrap: impl Fn(&Arc<dyn Backend>) -> Arc<dyn Backend>) -> Router {
        Router::new(
            wrap(&self.default),
            self.routes
                .iter()
                .map(|(prefix, backend)| (prefix.clone(), wrap(backend)))
                .collect(),
        )
    }

    pub(crate) fn backend_for(&self, key: &str) -> &Arc<dyn Backend> {
        self.routes
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map_or(&self.default, |(_, backend)| backend)
    }

    /// The backend for `key`: `Ok` when it is the embedded memory backend (its reads never wait), else `Err`
    /// with the backend.
    #[inline(always)]
    pub(crate) fn route(&self, key: &str) -> Result<&MemoryBackend, &Arc<dyn Backend>> {
        let backend = self.backend_for(key);
        self.as_memory(backend).ok_or(backend)
    }

    /// [`embedded_memory`] for one of this router's backends, without the downcasts when none of them is one.
    #[inline(always)]
    pub(crate) fn as_memory<'a>(&self, backend: &'a Arc<dyn Backend>) -> Option<&'a MemoryBackend> {
        if self.has_memory {
            embedded_memory(backend)
        } else {
            None
        }
    }

    /// Every backend, the default one first: for operations over all keys.
    pub(crate) fn backends(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        std::iter::once(&self.default).chain(self.routes.iter().map(|(_, b)| b))
    }

    pub(crate) fn default_backend(&self) -> &Arc<dyn Backend> {
        &self.default
    }

    /// The routes as (prefix, backend name), for `Debug`.
    pub(crate) fn routes(&self) -> Vec<(&str, &'static str)> {
        self.routes
            .iter()
            .map(|(prefix, backend)| (prefix.as_str(), backend.name()))
            .collect()
    }

    /// The capabilities every backend shares.
    pub(crate) fn capabilities(&self) -> Capabilities {
        self.backends().fold(Capabilities::all(), |have, backend| {
            have & backend.capabilities()
        })
    }

    /// The first backend lacking some of `capabilities`, as the error that names it and what it lacks.
    pub(crate) fn require(&self, capabilities: Capabilities) -> Result<(), BackendError> {
        for backend in self.backends() {
            let missing = capabilities - backend.capabilities();
            if !missing.is_empty() {
                return Err(backend.unsupported(missing));
            }
        }
        Ok(())
    }
}

/// The embedded memory backend behind `backend`, if that is what it is (directly or in an `Arc`): read without
/// the boxed futures of the `Backend` trait and, on hits of cached functions, without decoding. A layered
/// memory backend is not one: its layer must see every read.
pub(crate) fn embedded_memory(backend: &Arc<dyn Backend>) -> Option<&MemoryBackend> {
    let any = (**backend).as_any();
    any.downcast_ref::<MemoryBackend>().or_else(|| {
        any.downcast_ref::<Arc<MemoryBackend>>()
            .map(|shared| &**shared)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[test]
    fn the_longest_matching_prefix_wins() {
        let named = |n: usize| -> Arc<dyn Backend> {
            Arc::new(MemoryBackend::builder().max_entries(n).build())
        };
        let (default, short, long) = (named(1), named(2), named(3));
        let router = Router::new(
            default.clone(),
            vec![("a:".into(), short.clone()), ("a:b:".into(), long.clone())],
        );
        assert!(Arc::ptr_eq(router.backend_for("a:b:1"), &long));
        assert!(Arc::ptr_eq(router.backend_for("a:c"), &short));
        assert!(Arc::ptr_eq(router.backend_for("z"), &default));
        assert_eq!(router.backends().count(), 3);
        assert_eq!(router.routes().len(), 2);
    }

    #[test]
    fn route_names_the_embedded_memory_backend_and_nothing_else() {
        let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::default());
        let shared: Arc<dyn Backend> = Arc::new(Arc::new(MemoryBackend::default()));
        let null: Arc<dyn Backend> = Arc::new(crate::NullBackend::new("test"));
        let router = Router::new(
            memory.clone(),
            vec![("n:".into(), null.clone()), ("s:".into(), shared)],
        );
        assert!(router.route("k").is_ok());
        assert!(router.route("s:k").is_ok());
        assert!(matches!(router.route("n:k"), Err(backend) if Arc::ptr_eq(backend, &null)));
        // No memory backend at all: every route is the backend itself.
        let remote_only = Router::new(null.clone(), Vec::new());
        assert!(matches!(remote_only.route("k"), Err(backend) if Arc::ptr_eq(backend, &null)));
        // Namespace views wrap every backend in a layer: not the embedded backend any more.
        let wrapped = router.map(|_| null.clone());
        assert!(wrapped.route("k").is_err());
    }
}
