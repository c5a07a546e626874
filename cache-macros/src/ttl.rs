//! The `ttl = ...` option: humantime strings and integer seconds are checked at compile time and become a
//! constant `Duration`; any other expression is converted at run time through `__private::ttl`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, Path};

use crate::attr::peel;

/// A parsed `ttl` option.
pub(crate) enum Ttl {
    /// A literal, validated and non-zero.
    Fixed { secs: u64, nanos: u32 },
    /// Any other expression: `Duration`, `Option<Duration>` or integer seconds, via `IntoTtl`.
    Dynamic(Expr),
}

/// Parses the value of `ttl = ...`.
pub(crate) fn parse(expr: Expr) -> syn::Result<Ttl> {
    let fixed = |duration: std::time::Duration| Ttl::Fixed {
        secs: duration.as_secs(),
        nanos: duration.subsec_nanos(),
    };
    match peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let text = lit.value();
            match humantime::parse_duration(text.trim()) {
                Ok(duration) if duration.is_zero() => Err(syn::Error::new_spanned(
                    lit,
                    "ttl must be greater than zero; leave `ttl` out for entries that never expire",
                )),
                Ok(duration) => Ok(fixed(duration)),
                Err(_) if ["never", "none", "forever", "infinite", "inf"].contains(&text.trim()) => {
                    Err(syn::Error::new_spanned(
                        lit,
                        "leave `ttl` out for entries that never expire (they are still evicted by a bounded backend)",
                    ))
                }
                Err(error) => Err(syn::Error::new_spanned(
                    lit,
                    format!("invalid ttl {text:?}: {error}; write a duration such as \"90s\", \"1h30m\" or \"500ms\""),
                )),
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            let secs: u64 = lit.base10_parse()?;
            if secs == 0 {
                return Err(syn::Error::new_spanned(
                    lit,
                    "ttl must be greater than zero; leave `ttl` out for entries that never expire",
                ));
            }
            Ok(Ttl::Fixed { secs, nanos: 0 })
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => Err(syn::Error::new_spanned(
            lit,
            "a fractional ttl must be written as a string such as \"1500ms\" or \"2m30s\"",
        )),
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            "expected a ttl: a duration string (\"1h30m\"), integer seconds or an expression",
        )),
        _ => Ok(Ttl::Dynamic(expr)),
    }
}

/// `Option<Duration>` tokens for an optional ttl.
pub(crate) fn to_tokens(ttl: Option<&Ttl>, krate: &Path) -> TokenStream {
    match ttl {
        None => quote!(#krate::__private::Option::None),
        Some(Ttl::Fixed { secs, nanos }) => {
            quote!(#krate::__private::Option::Some(#krate::__private::Duration::new(#secs, #nanos)))
        }
        Some(Ttl::Dynamic(expr)) => quote_spanned!(expr.span()=> #krate::__private::ttl(#expr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(src: &str) -> Option<(u64, u32)> {
        match parse(syn::parse_str(src).ok()?) {
            Ok(Ttl::Fixed { secs, nanos }) => Some((secs, nanos)),
            _ => None,
        }
    }

    #[test]
    fn literals() {
        assert_eq!(fixed("\"3h\""), Some((3 * 3600, 0)));
        assert_eq!(fixed("\"1h30m\""), Some((5400, 0)));
        assert_eq!(fixed("\"90s\""), Some((90, 0)));
        assert_eq!(fixed("\"500ms\""), Some((0, 500_000_000)));
        assert_eq!(fixed("60"), Some((60, 0)));
        assert!(parse(syn::parse_str("\"0s\"").unwrap()).is_err());
        assert!(parse(syn::parse_str("0").unwrap()).is_err());
        assert!(parse(syn::parse_str("\"3 parsecs\"").unwrap()).is_err());
        assert!(parse(syn::parse_str("1.5").unwrap()).is_err());
        assert!(matches!(
            parse(syn::parse_str("Duration::from_secs(3)").unwrap()),
            Ok(Ttl::Dynamic(_))
        ));
    }
}
