//! Which backend holds a key: a default backend and prefix routes (cashews' `setup(url, prefix=...)`).

use std::sync::Arc;

use crate::backend::{Backend, BackendError, Capabilities};

/// The backends of one cache, and the rule that picks one for a key: the longest route prefix the key starts
/// with, else the default.
pub(crate) struct Router {
    default: Arc<dyn Backend>,
    /// Longest prefix first, so the most specific route wins.
    routes: Vec<(String, Arc<dyn Backend>)>,
}

impl Router {
    pub(crate) fn new(
        default: Arc<dyn Backend>,
        mut routes: Vec<(String, Arc<dyn Backend>)>,
    ) -> Self {
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Self { default, routes }
    }

    /// The same routes over backends replaced by `wrap` (namespace views wrap every backend).
    pub(crate) fn map(&self, wrap: impl Fn(&Arc<dyn Backend>) -> Arc<dyn Backend>) -> Router {
        Router {
            default: wrap(&self.default),
            routes: self
                .routes
                .iter()
                .map(|(prefix, backend)| (prefix.clone(), wrap(backend)))
                .collect(),
        }
    }

    pub(crate) fn backend_for(&self, key: &str) -> &Arc<dyn Backend> {
        self.routes
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map_or(&self.default, |(_, backend)| backend)
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
}
