//! Parsing of attribute arguments into typed options.
//!
//! Both macros take a comma separated list of `name = value`, `name(a, b)` and bare `name` flags (a bare flag
//! means `name = true`). `#[invalidates]` additionally takes targets in the same list; those are parsed by
//! `expand_invalidates` through [`parse_items`]. Every problem becomes a spanned error on the user's tokens:
//! unknown options (with a "did you mean"), duplicates, values of the wrong kind and contradicting options.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, Token};

use crate::errors::{did_you_mean, name_list, Errors};
use crate::ttl::Ttl;

/// One `name = value`, `name(a, b)` or `name` entry, before its meaning is known.
pub(crate) struct RawOption {
    pub(crate) name: Ident,
    pub(crate) value: RawValue,
}

/// The value part of a [`RawOption`].
pub(crate) enum RawValue {
    /// `name`
    Flag,
    /// `name = expr`
    Expr(Expr),
    /// `name(a, b)`
    List(Span, Vec<Ident>),
}

/// One entry of an attribute list: an option or (for `#[invalidates]`) a bare expression.
pub(crate) enum Item {
    Option(RawOption),
    Expr(Expr),
}

/// Whether the next tokens start an option (`name =`, `name(`, a lone `name`); otherwise they are an expression.
fn starts_option(input: ParseStream<'_>, allow_exprs: bool) -> bool {
    if input.peek(Token![crate]) && input.peek2(Token![=]) {
        return true;
    }
    if !input.peek(Ident::peek_any) {
        return false;
    }
    let assign = input.peek2(Token![=]) && !input.peek2(Token![==]) && !input.peek2(Token![=>]);
    if !allow_exprs {
        return true;
    }
    // In `#[invalidates]`, `get_user(..)` and `self.get_user(..)` are targets, so only `name = value` is an
    // option there.
    assign
}

fn parse_option(input: ParseStream<'_>) -> syn::Result<RawOption> {
    let name = if input.peek(Token![crate]) {
        let token: Token![crate] = input.parse()?;
        Ident::new("crate", token.span)
    } else {
        Ident::parse_any(input)?
    };
    let value = if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        RawValue::Expr(input.parse()?)
    } else if input.peek(syn::token::Paren) {
        let content;
        let paren = syn::parenthesized!(content in input);
        let names =
            Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
        RawValue::List(paren.span.join(), names.into_iter().collect())
    } else {
        RawValue::Flag
    };
    Ok(RawOption { name, value })
}

/// Parses a comma separated attribute list. With `allow_exprs`, entries that are not `name = value` are parsed
/// as expressions (the targets of `#[invalidates]`).
pub(crate) fn parse_items(input: ParseStream<'_>, allow_exprs: bool) -> syn::Result<Vec<Item>> {
    let mut items = Vec::new();
    while !input.is_empty() {
        if starts_option(input, allow_exprs) {
            items.push(Item::Option(parse_option(input)?));
        } else if allow_exprs {
            items.push(Item::Expr(input.parse()?));
        } else {
            return Err(
                input.error("expected an option such as `ttl = \"1h\"` or `key = \"user:{id}\"`")
            );
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(items)
}

/// Strips invisible groups and parentheses that `macro_rules!` forwarding may add around a literal.
pub(crate) fn peel(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => peel(&group.expr),
        Expr::Paren(paren) => peel(&paren.expr),
        other => other,
    }
}

/// Tracks which options were already given, for duplicate errors and "did you mean" hints.
pub(crate) struct Seen<'a> {
    known: &'a [&'a str],
    seen: HashMap<String, Span>,
}

impl<'a> Seen<'a> {
    pub(crate) fn new(known: &'a [&'a str]) -> Self {
        Self {
            known,
            seen: HashMap::new(),
        }
    }

    /// `Ok(name)` for a known option seen for the first time, else the error.
    pub(crate) fn check(&mut self, name: &Ident) -> syn::Result<String> {
        let text = name.unraw().to_string();
        if !self.known.contains(&text.as_str()) {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "unknown option `{text}`{}; the options are {}",
                    did_you_mean(&text, self.known.iter().copied()),
                    name_list(self.known.iter().copied())
                ),
            ));
        }
        if self.seen.insert(text.clone(), name.span()).is_some() {
            return Err(syn::Error::new(
                name.span(),
                format!("duplicate option `{text}`"),
            ));
        }
        Ok(text)
    }
}

/// The `= expr` of an option, or an error naming the expected form.
pub(crate) fn expect_expr(option: RawOption, form: &str) -> syn::Result<Expr> {
    match option.value {
        RawValue::Expr(expr) => Ok(expr),
        RawValue::Flag => Err(syn::Error::new(
            option.name.span(),
            format!("expected `{form}`"),
        )),
        RawValue::List(span, _) => Err(syn::Error::new(span, format!("expected `{form}`"))),
    }
}

/// A string literal option value.
pub(crate) fn expect_str(option: RawOption, form: &str) -> syn::Result<LitStr> {
    let expr = expect_expr(option, form)?;
    match peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal: `{form}`"),
        )),
    }
}

/// A boolean option: a bare flag, `= true` or `= false`. Returns the value and the span to blame.
pub(crate) fn expect_bool(option: RawOption) -> syn::Result<(bool, Span)> {
    let name = option.name.unraw().to_string();
    match option.value {
        RawValue::Flag => Ok((true, option.name.span())),
        RawValue::Expr(expr) => match peel(&expr) {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(value),
                ..
            }) => Ok((value.value, expr.span())),
            other => Err(syn::Error::new_spanned(
                other,
                format!("expected `{name} = true` or `{name} = false`"),
            )),
        },
        RawValue::List(span, _) => Err(syn::Error::new(
            span,
            format!("expected `{name} = true` or `{name} = false`"),
        )),
    }
}

/// The `crate = path` option.
pub(crate) fn expect_path(option: RawOption) -> syn::Result<Path> {
    let expr = expect_expr(option, "crate = path::to::cache_core")?;
    match peel(&expr) {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a path such as `crate = ::my_cache_core`",
        )),
    }
}

/// The default runtime crate path, `::cache_core`.
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::cache_core)
}

/// Options of `#[cached(...)]`.
pub(crate) struct CachedOptions {
    pub(crate) krate: Path,
    pub(crate) ttl: Option<Ttl>,
    pub(crate) key: Option<LitStr>,
    pub(crate) prefix: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) condition: Option<Expr>,
    pub(crate) cache_err: Option<(bool, Span)>,
    pub(crate) strict: Option<(bool, Span)>,
    pub(crate) result: Option<(bool, Span)>,
    pub(crate) companions: bool,
    pub(crate) in_impl: bool,
}

const CACHED_OPTIONS: &[&str] = &[
    "ttl",
    "key",
    "prefix",
    "skip",
    "cache",
    "condition",
    "cache_err",
    "strict",
    "result",
    "companions",
    "in_impl",
    "crate",
];

impl Parse for CachedOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let items = parse_items(input, false)?;
        let mut options = CachedOptions {
            krate: default_crate(),
            ttl: None,
            key: None,
            prefix: None,
            skip: Vec::new(),
            cache: None,
            condition: None,
            cache_err: None,
            strict: None,
            result: None,
            companions: true,
            in_impl: false,
        };
        let mut errors = Errors::default();
        let mut seen = Seen::new(CACHED_OPTIONS);
        for item in items {
            let Item::Option(option) = item else { continue };
            let Some(name) = errors.ok(seen.check(&option.name)) else {
                continue;
            };
            match name.as_str() {
                "ttl" => {
                    let ttl = expect_expr(option, "ttl = \"1h30m\"").and_then(crate::ttl::parse);
                    options.ttl = errors.ok(ttl);
                }
                "key" => options.key = errors.ok(expect_str(option, "key = \"user:{id}\"")),
                "prefix" => options.prefix = errors.ok(expect_str(option, "prefix = \"users\"")),
                "skip" => match option.value {
                    RawValue::List(_, names) => {
                        for name in names {
                            if name == "self" {
                                errors.push(syn::Error::new(
                                    name.span(),
                                    "`self` is never part of the default key, there is nothing to skip",
                                ));
                            } else {
                                options.skip.push(name);
                            }
                        }
                    }
                    _ => errors.push(syn::Error::new(
                        option.name.span(),
                        "expected `skip(arg, ...)`",
                    )),
                },
                "cache" => options.cache = errors.ok(expect_expr(option, "cache = EXPR")),
                "condition" => {
                    options.condition = errors.ok(expect_expr(option, "condition = path::to::fn"))
                }
                "cache_err" => options.cache_err = errors.ok(expect_bool(option)),
                "strict" => options.strict = errors.ok(expect_bool(option)),
                "result" => options.result = errors.ok(expect_bool(option)),
                "companions" => {
                    if let Some((value, _)) = errors.ok(expect_bool(option)) {
                        options.companions = value;
                    }
                }
                "in_impl" => {
                    if let Some((value, _)) = errors.ok(expect_bool(option)) {
                        options.in_impl = value;
                    }
                }
                "crate" => {
                    if let Some(path) = errors.ok(expect_path(option)) {
                        options.krate = path;
                    }
                }
                _ => {}
            }
        }
        if let (Some((true, strict)), Some((true, _))) = (options.strict, options.cache_err) {
            errors.push(syn::Error::new(
                strict,
                "`strict = true` caches `Ok` only and cannot be combined with `cache_err = true`",
            ));
        }
        errors.finish()?;
        Ok(options)
    }
}

/// Options of `#[invalidates(...)]` plus its targets.
pub(crate) struct InvalidatesArgs {
    pub(crate) krate: Path,
    pub(crate) cache: Option<Expr>,
    pub(crate) result: Option<(bool, Span)>,
    pub(crate) targets: Vec<Expr>,
}

const INVALIDATES_OPTIONS: &[&str] = &["cache", "result", "crate"];

impl Parse for InvalidatesArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let items = parse_items(input, true)?;
        let mut args = InvalidatesArgs {
            krate: default_crate(),
            cache: None,
            result: None,
            targets: Vec::new(),
        };
        let mut errors = Errors::default();
        let mut seen = Seen::new(INVALIDATES_OPTIONS);
        for item in items {
            let option = match item {
                Item::Expr(expr) => {
                    args.targets.push(expr);
                    continue;
                }
                Item::Option(option) => option,
            };
            let Some(name) = errors.ok(seen.check(&option.name)) else {
                continue;
            };
            match name.as_str() {
                "cache" => args.cache = errors.ok(expect_expr(option, "cache = EXPR")),
                "result" => args.result = errors.ok(expect_bool(option)),
                "crate" => {
                    if let Some(path) = errors.ok(expect_path(option)) {
                        args.krate = path;
                    }
                }
                _ => {}
            }
        }
        errors.finish()?;
        Ok(args)
    }
}
