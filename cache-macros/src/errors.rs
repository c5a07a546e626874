//! Error plumbing shared by both macros: collecting several spanned errors, "did you mean" suggestions and the
//! fallback output used when expansion fails.

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects several [`syn::Error`]s so one compilation reports every problem of an attribute at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds one error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps the value of `result`, recording its error.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// `Err` with every collected error, or `Ok(())` when there was none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// When expansion fails: the errors plus the item unchanged, so the rest of the crate does not drown in
/// follow-up errors about a function that suddenly went missing.
pub(crate) fn error_output(error: syn::Error, item: impl ToTokens) -> TokenStream {
    let mut out = error.to_compile_error();
    item.to_tokens(&mut out);
    out
}

/// A "did you mean `x`?" suffix for `name` among `candidates` (small edit distance), or an empty string.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    let best = candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, candidate)| {
            let len = candidate.len().max(name.len());
            *distance <= if len <= 3 { 1 } else { (len / 3).max(2) }
        })
        .min_by_key(|(distance, _)| *distance);
    match best {
        Some((_, candidate)) => format!(" (did you mean `{candidate}`?)"),
        None => String::new(),
    }
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// A human list of names: `` `a`, `b` `` or "none".
pub(crate) fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("tll", ["ttl", "key"]),
            " (did you mean `ttl`?)"
        );
        assert_eq!(
            did_you_mean("cahce", ["cache", "crate"]),
            " (did you mean `cache`?)"
        );
        assert_eq!(did_you_mean("zzzzzz", ["ttl", "key"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(name_list(["a", "b"]), "`a`, `b`");
        assert_eq!(name_list([]), "none");
    }
}
