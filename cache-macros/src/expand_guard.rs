//! Parsing and code generation for the guard macros `#[locked]`, `#[rate_limit]` and `#[circuit_breaker]`: they
//! cache nothing; each renders a key from the arguments and runs the body (the user's tokens, unparsed, as an
//! `async move` block) through one `__private` call that may refuse with a typed error.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, ReturnType};

use crate::attr::{self, expect_bool, expect_expr, expect_path, expect_str, Item, Seen};
use crate::errors::Errors;
use crate::expand_cached::check_signature;
use crate::item::FnItem;
use crate::template::Template;
use crate::ttl::{self, Ttl};

/// Which guard, with its own options.
// One value per macro invocation: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Guard {
    /// `#[locked]`: `ttl` defaults to 30 s, `timeout` to `ttl`.
    Locked {
        ttl: Option<Ttl>,
        wait: bool,
        timeout: Option<Ttl>,
    },
    /// `#[rate_limit]`.
    RateLimit {
        limit: Expr,
        period: Ttl,
        sliding: bool,
        action: Option<Expr>,
    },
    /// `#[circuit_breaker]`: defaults as `CircuitOptions::new`.
    CircuitBreaker {
        errors_rate: Expr,
        period: Ttl,
        min_calls: Option<Expr>,
        ttl: Option<Ttl>,
        half_open_ttl: Option<Ttl>,
        half_open_ratio: Option<Expr>,
    },
}

/// Which guard macro is being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardKind {
    Locked,
    RateLimit,
    CircuitBreaker,
}

impl GuardKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GuardKind::Locked => "locked",
            GuardKind::RateLimit => "rate_limit",
            GuardKind::CircuitBreaker => "circuit_breaker",
        }
    }

    /// The prefix of every key of this guard, so its state never collides with cached values.
    fn key_prefix(self) -> &'static str {
        match self {
            GuardKind::Locked => "lock:",
            GuardKind::RateLimit => "rate_limit:",
            GuardKind::CircuitBreaker => "circuit:",
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            GuardKind::Locked => &["key", "cache", "crate", "ttl", "wait", "timeout"],
            GuardKind::RateLimit => &[
                "key",
                "cache",
                "crate",
                "limit",
                "period",
                "algorithm",
                "action",
            ],
            GuardKind::CircuitBreaker => &[
                "key",
                "cache",
                "crate",
                "errors_rate",
                "period",
                "min_calls",
                "ttl",
                "half_open_ttl",
                "half_open_ratio",
            ],
        }
    }
}

/// The options of a guard macro.
pub(crate) struct GuardOptions {
    kind: GuardKind,
    krate: Path,
    key: Option<LitStr>,
    cache: Option<Expr>,
    guard: Guard,
}

/// A share between 0 and 1: a literal is checked here, an expression must be an `f64`.
fn parse_ratio(expr: Expr, name: &str, zero_ok: bool) -> syn::Result<Expr> {
    let value = match attr::peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => Some(lit.base10_parse::<f64>()?),
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => Some(lit.base10_parse::<u64>()? as f64),
        Expr::Lit(other) => {
            return Err(syn::Error::new_spanned(
                other,
                format!("expected a number between 0 and 1: `{name} = 0.05`"),
            ))
        }
        _ => None,
    };
    match value {
        Some(v) if !(v <= 1.0 && (v > 0.0 || (zero_ok && v == 0.0))) => {
            Err(syn::Error::new_spanned(
                &expr,
                format!(
                    "`{name}` is a share of calls: a number {} 0 and at most 1 (e.g. 0.05 for 5%)",
                    if zero_ok { "of at least" } else { "above" }
                ),
            ))
        }
        Some(v) => Ok(syn::parse_quote!(#v)),
        None => Ok(expr),
    }
}

/// A count (`limit`, `min_calls`): a literal checked to be at least 1, or a `u64` expression.
fn parse_count(expr: Expr, name: &str) -> syn::Result<Expr> {
    match attr::peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            if lit.base10_parse::<u64>()? == 0 {
                return Err(syn::Error::new_spanned(
                    lit,
                    format!("`{name}` must be at least 1"),
                ));
            }
            Ok(expr)
        }
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            format!("expected an integer: `{name} = 100`"),
        )),
        _ => Ok(expr),
    }
}

impl GuardOptions {
    pub(crate) fn parse_for(input: ParseStream<'_>, kind: GuardKind) -> syn::Result<Self> {
        let items = attr::parse_items(input, false)?;
        let mut errors = Errors::default();
        let mut seen = Seen::new(kind.options());
        let (mut krate, mut key, mut cache) = (attr::default_crate(), None, None);
        let (mut ttl, mut wait, mut timeout) = (None, true, None);
        let (mut limit, mut period, mut sliding, mut action) = (None, None, false, None);
        let (mut errors_rate, mut min_calls, mut half_open_ttl, mut half_open_ratio) =
            (None, None, None, None);
        for item in items {
            let Item::Option(option) = item else { continue };
            let Some(name) = errors.ok(seen.check(&option.name)) else {
                continue;
            };
            let duration = |option, form: &str| {
                expect_expr(option, form).and_then(|expr| ttl::parse_named(expr, &name))
            };
            match name.as_str() {
                "key" => key = errors.ok(expect_str(option, "key = \"user:{id}\"")),
                "cache" => cache = errors.ok(expect_expr(option, "cache = EXPR")),
                "crate" => {
                    if let Some(path) = errors.ok(expect_path(option)) {
                        krate = path;
                    }
                }
                "ttl" => ttl = errors.ok(duration(option, "ttl = \"30s\"")),
                "wait" => {
                    if let Some((value, _)) = errors.ok(expect_bool(option)) {
                        wait = value;
                    }
                }
                "timeout" => {
                    let name_span = option.name.span();
                    timeout = errors
                        .ok(duration(option, "timeout = \"5s\""))
                        .map(|value| (value, name_span));
                }
                "limit" => {
                    limit = errors
                        .ok(expect_expr(option, "limit = 100")
                            .and_then(|e| parse_count(e, "limit")))
                }
                "period" => period = errors.ok(duration(option, "period = \"1m\"")),
                "algorithm" => {
                    if let Some(lit) = errors.ok(expect_str(option, "algorithm = \"sliding\"")) {
                        match lit.value().as_str() {
                            "fixed" => sliding = false,
                            "sliding" => sliding = true,
                            other => errors.push(syn::Error::new(
                                lit.span(),
                                format!(
                                    "unknown algorithm `{other}`; the algorithms are `fixed` (the default) and \
                                     `sliding`"
                                ),
                            )),
                        }
                    }
                }
                "action" => action = errors.ok(expect_expr(option, "action = path::to::fn")),
                "errors_rate" => {
                    errors_rate = errors.ok(expect_expr(option, "errors_rate = 0.05")
                        .and_then(|e| parse_ratio(e, "errors_rate", true)))
                }
                "min_calls" => {
                    min_calls = errors.ok(expect_expr(option, "min_calls = 10")
                        .and_then(|e| parse_count(e, "min_calls")))
                }
                "half_open_ttl" => {
                    half_open_ttl = errors.ok(duration(option, "half_open_ttl = \"10s\""))
                }
                "half_open_ratio" => {
                    half_open_ratio = errors.ok(expect_expr(option, "half_open_ratio = 0.1")
                        .and_then(|e| parse_ratio(e, "half_open_ratio", false)))
                }
                _ => {}
            }
        }
        let mut required = |given: bool, name: &str, example: &str| {
            if !given && !seen.given(name) {
                errors.push(syn::Error::new(
                    Span::call_site(),
                    format!(
                        "`#[{}]` needs `{name}`, e.g. `#[{}({example})]`",
                        kind.name(),
                        kind.name()
                    ),
                ));
            }
        };
        let guard = match kind {
            GuardKind::Locked => {
                if let (Some((_, span)), false) = (&timeout, wait) {
                    errors.push(syn::Error::new(
                        *span,
                        "`timeout` is how long a caller waits for the lock; with `wait = false` nobody waits",
                    ));
                }
                Some(Guard::Locked {
                    ttl,
                    wait,
                    timeout: timeout.map(|(value, _)| value),
                })
            }
            GuardKind::RateLimit => {
                required(limit.is_some(), "limit", "limit = 100, period = \"1m\"");
                required(period.is_some(), "period", "limit = 100, period = \"1m\"");
                match (limit, period) {
                    (Some(limit), Some(period)) => Some(Guard::RateLimit {
                        limit,
                        period,
                        sliding,
                        action,
                    }),
                    _ => None,
                }
            }
            GuardKind::CircuitBreaker => {
                let example = "errors_rate = 0.05, period = \"1m\"";
                required(errors_rate.is_some(), "errors_rate", example);
                required(period.is_some(), "period", example);
                match (errors_rate, period) {
                    (Some(errors_rate), Some(period)) => Some(Guard::CircuitBreaker {
                        errors_rate,
                        period,
                        min_calls,
                        ttl,
                        half_open_ttl,
                        half_open_ratio,
                    }),
                    _ => None,
                }
            }
        };
        errors.finish()?;
        let Some(guard) = guard else {
            // Unreachable: a missing required option pushed an error above.
            return Err(syn::Error::new(Span::call_site(), "missing options"));
        };
        Ok(GuardOptions {
            kind,
            krate,
            key,
            cache,
            guard,
        })
    }
}

fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

pub(crate) fn expand(options: GuardOptions, item: FnItem) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let kind = options.kind;
    check_signature(&item.sig, kind.name(), &mut errors);
    let info = errors.ok(crate::sig::analyze(&item.sig));
    let template = options
        .key
        .as_ref()
        .and_then(|lit| errors.ok(Template::parse(lit)));
    if let (Some(info), Some(template)) = (&info, &template) {
        let no_self = format!(
            "`self` is not available in this key: `{}` has no `self` receiver",
            item.sig.ident.unraw()
        );
        let self_error = info.receiver.is_none().then_some(no_self.as_str());
        errors.ok(template.check_names(&info.binding_names(), self_error));
    }
    let has_action = matches!(
        &options.guard,
        Guard::RateLimit {
            action: Some(_),
            ..
        }
    );
    if !has_action && matches!(item.sig.output, ReturnType::Default) {
        let what = match kind {
            GuardKind::Locked => "`Err(Locked)` for a caller that finds the lock held",
            GuardKind::RateLimit => {
                "`Err(RateLimited)` for a call over the limit (or name an `action`)"
            }
            GuardKind::CircuitBreaker => "`Err(CircuitOpen)` while the circuit is open",
        };
        errors.push(syn::Error::new(
            item.sig.ident.span(),
            format!(
                "`#[{}]` needs a function returning `Result<T, E>` with `E: From<…>`: it returns {what}",
                kind.name()
            ),
        ));
    }
    errors.finish()?;
    let Some(info) = info else {
        return Err(syn::Error::new(Span::call_site(), "unreadable signature"));
    };
    let krate = &options.krate;
    let (cache, key, kb) = (local("__cache"), local("__key"), local("__kb"));
    let cache_value = match &options.cache {
        Some(expr) => quote_spanned! {expr.span()=>
            {
                let __c: &#krate::__private::Cache = &(#expr);
                ::core::clone::Clone::clone(__c)
            }
        },
        None => quote!(#krate::__private::global()),
    };
    let name = format!("::{}", item.sig.ident.unraw());
    let prefix = kind.key_prefix();
    let key_statements = match &template {
        Some(template) => {
            let render = template.render(&kb, krate);
            quote!(#kb.literal(#prefix); #render)
        }
        None if info.receiver.is_some() || info.mentions_self_type => quote! {
            #kb.literal(#prefix);
            #kb.literal(::core::any::type_name::<Self>());
            #kb.literal(#name);
        },
        None => quote! {
            #kb.literal(::core::concat!(#prefix, ::core::module_path!(), #name));
        },
    };
    let block = &item.block;
    let body = quote!(async move #block);
    let out_span = match &item.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => item.sig.ident.span(),
    };
    let krate_out = crate::template::respan(quote!(#krate), out_span);
    let private = quote_spanned!(out_span=> #krate_out::__private);
    let call = match &options.guard {
        Guard::Locked { ttl, wait, timeout } => {
            let ttl = ttl.as_ref().map_or_else(
                || quote!(#krate::__private::Duration::from_secs(30)),
                |ttl| ttl::duration_tokens(ttl, krate),
            );
            let t = local("__ttl");
            let timeout = timeout
                .as_ref()
                .map_or_else(|| quote!(#t), |value| ttl::duration_tokens(value, krate));
            let call = quote_spanned! {out_span=>
                #private::guard_locked(&#cache, #key, #t, #wait, #timeout, #body).await
            };
            quote! {{
                let #t = #ttl;
                #call
            }}
        }
        Guard::RateLimit {
            limit,
            period,
            sliding,
            action,
        } => {
            let period = ttl::duration_tokens(period, krate);
            let rule = if *sliding {
                quote!(sliding)
            } else {
                quote!(fixed)
            };
            let limit = quote_spanned!(limit.span()=> { let __l: u64 = #limit; __l });
            let refused = match action {
                Some(action) => quote_spanned!(action.span()=> #action),
                None => {
                    quote_spanned!(out_span=> |__limited| #krate::__private::Result::Err(::core::convert::From::from(__limited)))
                }
            };
            quote! {
                #private::guard_rate_limit(
                    &#cache,
                    #key,
                    #krate::__private::RateRule::#rule(#limit, #period),
                    #body,
                    #refused,
                ).await
            }
        }
        Guard::CircuitBreaker {
            errors_rate,
            period,
            min_calls,
            ttl,
            half_open_ttl,
            half_open_ratio,
        } => {
            let period = ttl::duration_tokens(period, krate);
            let mut options = quote!(#krate::__private::CircuitOptions::new({ let __r: f64 = #errors_rate; __r }, #period));
            if let Some(min_calls) = min_calls {
                options.extend(quote_spanned!(min_calls.span()=> .min_calls({ let __m: u64 = #min_calls; __m })));
            }
            if let Some(ttl) = ttl {
                let ttl = ttl::duration_tokens(ttl, krate);
                options.extend(quote!(.ttl(#ttl)));
            }
            if let Some(half) = half_open_ttl {
                let half = ttl::duration_tokens(half, krate);
                options.extend(quote!(.half_open_ttl(#half)));
            }
            if let Some(ratio) = half_open_ratio {
                options.extend(quote!(.half_open_ratio({ let __r: f64 = #ratio; __r })));
            }
            quote_spanned!(out_span=> #private::circuit_breaker(&#cache, &#key, #options, #body).await)
        }
    };
    let attrs = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    let statements = quote! {
        let #cache: #krate::__private::Cache = #cache_value;
        let #key: #krate::__private::String = {
            let mut #kb = #krate::__private::KeyBuilder::new();
            #key_statements
            #kb.finish()
        };
        #call
    };
    // Spanned at the return type: the async fn's future, and so a missing `From` impl, is checked at its span.
    let mut fn_body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, statements);
    fn_body.set_span(out_span);
    Ok(quote! {
        #(#attrs)*
        #vis #sig #fn_body
    })
}
