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
    parse_named(expr, "ttl")
}

/// Parses a duration option (`ttl`, `early_ttl`, `soft_ttl`, `lock_ttl`, `lock_wait`, `time_condition`): the
/// same literal forms as `ttl`, zero rejected. Only `ttl` itself may be "absent = forever", so only its
/// messages mention leaving it out.
pub(crate) fn parse_named(expr: Expr, name: &str) -> syn::Result<Ttl> {
    let fixed = |duration: std::time::Duration| Ttl::Fixed {
        secs: duration.as_secs(),
        nanos: duration.subsec_nanos(),
    };
    let zero = if name == "ttl" {
        "ttl must be greater than zero; leave `ttl` out for entries that never expire".to_owned()
    } else {
        format!("`{name}` must be greater than zero")
    };
    match peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let text = lit.value();
            match humantime::parse_duration(text.trim()) {
                Ok(duration) if duration.is_zero() => Err(syn::Error::new_spanned(lit, zero)),
                Ok(duration) => Ok(fixed(duration)),
                Err(_)
                    if name == "ttl"
                        && ["never", "none", "forever", "infinite", "inf"].contains(&text.trim()) =>
                {
                    Err(syn::Error::new_spanned(
                        lit,
                        "leave `ttl` out for entries that never expire (they are still evicted by a bounded backend)",
                    ))
                }
                Err(error) => Err(syn::Error::new_spanned(
                    lit,
                    format!("invalid {name} {text:?}: {error}; write a duration such as \"90s\", \"1h30m\" or \"500ms\""),
                )),
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            let secs: u64 = lit.base10_parse()?;
            if secs == 0 {
                return Err(syn::Error::new_spanned(lit, zero));
            }
            Ok(Ttl::Fixed { secs, nanos: 0 })
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => Err(syn::Error::new_spanned(
            lit,
            format!("a fractional {name} must be written as a string such as \"1500ms\" or \"2m30s\""),
        )),
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            format!("expected a {name}: a duration string (\"1h30m\"), integer seconds or an expression"),
        )),
        _ => Ok(Ttl::Dynamic(expr)),
    }
}

impl Ttl {
    /// The value when it is a literal, for compile-time comparisons between options.
    pub(crate) fn fixed(&self) -> Option<std::time::Duration> {
        match self {
            Ttl::Fixed { secs, nanos } => Some(std::time::Duration::new(*secs, *nanos)),
            Ttl::Dynamic(_) => None,
        }
    }
}

/// A literal duration for error messages (`7m`, `1h 30m`).
pub(crate) fn show(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `Duration` tokens for a duration option other than `ttl`. A non-literal must be a `Duration` expression (not
/// `Option`: these options have no "forever"); a type mismatch is reported at the expression.
pub(crate) fn duration_tokens(value: &Ttl, krate: &Path) -> TokenStream {
    match value {
        Ttl::Fixed { secs, nanos } => quote!(#krate::__private::Duration::new(#secs, #nanos)),
        Ttl::Dynamic(expr) => {
            let d = proc_macro2::Ident::new("__d", proc_macro2::Span::mixed_site());
            quote_spanned!(expr.span()=> {
                let #d: #krate::__private::Duration = #expr;
                #d
            })
        }
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
