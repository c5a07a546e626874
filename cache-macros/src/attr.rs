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

    /// Whether the option `name` was written (valid or not).
    pub(crate) fn given(&self, name: &str) -> bool {
        self.seen.contains_key(name)
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
    let expr = expect_expr(option, "crate = path::to::cachette")?;
    match peel(&expr) {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a path such as `crate = ::my_cachette`",
        )),
    }
}

/// The default runtime crate path, `::cachette` (the facade users depend on; it re-exports `cache_core`).
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::cachette)
}

/// Which caching macro is being parsed: decides the accepted options and the strategy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacroKind {
    Cached,
    Early,
    Failover,
    Hit,
    Locked,
}

/// Options every caching macro takes.
const COMMON_OPTIONS: &[&str] = &[
    "ttl",
    "key",
    "prefix",
    "skip",
    "cache",
    "condition",
    "time_condition",
    "tags",
    "result",
    "companions",
    "in_impl",
    "crate",
    "region",
    "namespace",
    "ttl_jitter",
];

const ALL_KINDS: [MacroKind; 5] = [
    MacroKind::Cached,
    MacroKind::Early,
    MacroKind::Failover,
    MacroKind::Hit,
    MacroKind::Locked,
];

impl MacroKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MacroKind::Cached => "cached",
            MacroKind::Early => "cache_early",
            MacroKind::Failover => "cache_failover",
            MacroKind::Hit => "cache_hit",
            MacroKind::Locked => "cache_locked",
        }
    }

    /// The options only this macro (and the ones sharing them) takes.
    fn specific(self) -> &'static [&'static str] {
        match self {
            MacroKind::Cached => &[
                "cache_err",
                "strict",
                "soft_ttl",
                "lock",
                "lock_ttl",
                "lock_wait",
                "soft_timeout",
                "hard_timeout",
            ],
            MacroKind::Early => &["cache_err", "strict", "early_ttl", "background"],
            // Failover stores `Ok` only and must see the body's `Err` (so never strict).
            MacroKind::Failover => &["on"],
            MacroKind::Hit => &["cache_err", "strict", "hits", "update_after"],
            MacroKind::Locked => &["cache_err", "strict", "lock_ttl", "lock_wait"],
        }
    }

    fn options(self) -> Vec<&'static str> {
        COMMON_OPTIONS
            .iter()
            .chain(self.specific())
            .copied()
            .collect()
    }
}

/// "`x` is not an option of `#[a]`; it belongs to `#[b]`" for an option another caching macro takes: clearer
/// than "unknown option" when the user picked the wrong macro.
fn foreign_option(kind: MacroKind, name: &Ident) -> Option<syn::Error> {
    let text = name.unraw().to_string();
    if kind.options().contains(&text.as_str()) {
        return None;
    }
    let owners: Vec<String> = ALL_KINDS
        .iter()
        .filter(|other| other.specific().contains(&text.as_str()))
        .map(|other| format!("#[{}]", other.name()))
        .collect();
    if owners.is_empty() {
        return None;
    }
    let why = match (kind, text.as_str()) {
        (MacroKind::Failover, "cache_err" | "strict") => {
            "; `#[cache_failover]` stores `Ok` values only and needs the body's `Err` to fall back"
        }
        (MacroKind::Locked, "lock") => "; `#[cache_locked]` always locks",
        _ => "",
    };
    Some(syn::Error::new(
        name.span(),
        format!(
            "`{text}` is not an option of `#[{}]`; it belongs to {}{why}",
            kind.name(),
            name_list(owners.iter().map(String::as_str))
        ),
    ))
}

/// A count option (`hits`, `update_after`): a literal, checked at compile time, or a `u64` expression.
pub(crate) enum Count {
    Fixed(u64),
    Dynamic(Expr),
}

fn parse_count(option: RawOption, form: &str) -> syn::Result<(Count, Span)> {
    let expr = expect_expr(option, form)?;
    let span = expr.span();
    match peel(&expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => Ok((Count::Fixed(lit.base10_parse()?), span)),
        Expr::Lit(other) => Err(syn::Error::new_spanned(
            other,
            format!("expected an integer: `{form}`"),
        )),
        _ => Ok((Count::Dynamic(expr), span)),
    }
}

/// A duration option with the span of its value.
fn parse_duration(option: RawOption, name: &str, form: &str) -> syn::Result<(Ttl, Span)> {
    let expr = expect_expr(option, form)?;
    let span = expr.span();
    Ok((crate::ttl::parse_named(expr, name)?, span))
}

/// Checks that a duration option is shorter than the ttl, when both are literals.
fn shorter_than_ttl(
    errors: &mut Errors,
    ttl: Option<std::time::Duration>,
    value: &Ttl,
    span: Span,
    name: &str,
    what: &str,
) {
    if let (Some(value), Some(ttl)) = (value.fixed(), ttl) {
        if value >= ttl {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{name}` ({}) must be shorter than `ttl` ({}): {what}",
                    crate::ttl::show(value),
                    crate::ttl::show(ttl)
                ),
            ));
        }
    }
}

/// The runtime strategy the function's body goes through, with its own arguments.
pub(crate) enum Strategy {
    /// `__private::cached_with`.
    Cached,
    /// `__private::soft`.
    Soft { soft_ttl: Ttl },
    /// `__private::early` (background) or `early_foreground`; `early_ttl` defaults to a third of `ttl`.
    Early {
        early_ttl: Option<Ttl>,
        background: bool,
    },
    /// `__private::failover`; `on` defaults to every error.
    Failover { on: Option<Expr> },
    /// `__private::hits`.
    Hits {
        hits: Count,
        update_after: Option<Count>,
    },
    /// `__private::locked`; `lock_ttl` defaults to 10 s, `lock_wait` to `lock_ttl`.
    Locked {
        lock_ttl: Option<Ttl>,
        lock_wait: Option<Ttl>,
    },
    /// `__private::timed`: `cached_with` (or `soft` with a `soft_ttl`) on its own task, with factory timeouts.
    Timed {
        soft_ttl: Option<Ttl>,
        soft_timeout: Option<Ttl>,
        hard_timeout: Option<Ttl>,
    },
}

impl Strategy {
    /// Whether the strategy may run the body after the call returned (then it must be `Send + 'static`).
    pub(crate) fn spawns(&self) -> bool {
        matches!(
            self,
            Strategy::Early {
                background: true,
                ..
            } | Strategy::Hits { .. }
                | Strategy::Timed { .. }
        )
    }
}

/// Options of the caching macros (`#[cached(...)]`, `#[cache_early(...)]`, ...).
pub(crate) struct CachedOptions {
    pub(crate) kind: MacroKind,
    pub(crate) krate: Path,
    pub(crate) ttl: Option<Ttl>,
    pub(crate) key: Option<LitStr>,
    pub(crate) prefix: Option<LitStr>,
    /// `region = "feature-name"`: on/off switch, TTL and cache from the region table at call time.
    pub(crate) region: Option<LitStr>,
    /// `namespace = "tenant:{tenant_id}"`: entries live in that namespace of the cache.
    pub(crate) namespace: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) condition: Option<Expr>,
    pub(crate) time_condition: Option<Ttl>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) cache_err: Option<(bool, Span)>,
    pub(crate) strict: Option<(bool, Span)>,
    pub(crate) result: Option<(bool, Span)>,
    pub(crate) companions: Companions,
    pub(crate) in_impl: bool,
    /// `ttl_jitter = "1m"`: each call's TTL gets a random extra of up to this.
    pub(crate) ttl_jitter: Option<Ttl>,
    pub(crate) strategy: Strategy,
}

/// Which companion functions a caching macro generates beside `NAME`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Companions {
    pub(crate) key: bool,
    pub(crate) invalidate: bool,
    pub(crate) invalidate_soft: bool,
    pub(crate) invalidate_all: bool,
    pub(crate) refresh: bool,
    pub(crate) set: bool,
    pub(crate) peek: bool,
    pub(crate) uncached: bool,
}

impl Companions {
    /// The companion names `companions(...)` accepts.
    const NAMES: [&'static str; 8] = [
        "key",
        "invalidate",
        "invalidate_soft",
        "invalidate_all",
        "refresh",
        "set",
        "peek",
        "uncached",
    ];

    /// Without a `companions` option: the two that `#[invalidates(NAME(..))]` calls.
    pub(crate) const DEFAULT: Companions = Companions {
        invalidate: true,
        invalidate_all: true,
        ..Companions::NONE
    };

    const NONE: Companions = Companions {
        key: false,
        invalidate: false,
        invalidate_soft: false,
        invalidate_all: false,
        refresh: false,
        set: false,
        peek: false,
        uncached: false,
    };

    const ALL: Companions = Companions {
        key: true,
        invalidate: true,
        invalidate_soft: true,
        invalidate_all: true,
        refresh: true,
        set: true,
        peek: true,
        uncached: true,
    };

    /// Whether any companion is generated (otherwise the body stays inline in `NAME`).
    pub(crate) fn any(self) -> bool {
        self != Companions::NONE
    }

    /// `companions = false` (none), `companions = true` (all) or `companions(key, refresh, ...)`.
    fn parse(option: RawOption) -> syn::Result<Companions> {
        let list = match option.value {
            RawValue::List(_, names) => names,
            _ => {
                let (all, _) = expect_bool(option)?;
                return Ok(if all {
                    Companions::ALL
                } else {
                    Companions::NONE
                });
            }
        };
        let mut companions = Companions::NONE;
        let mut errors = Errors::default();
        for name in list {
            let text = name.unraw().to_string();
            let flag = match text.as_str() {
                "key" => &mut companions.key,
                "invalidate" => &mut companions.invalidate,
                "invalidate_soft" => &mut companions.invalidate_soft,
                "invalidate_all" => &mut companions.invalidate_all,
                "refresh" => &mut companions.refresh,
                "set" => &mut companions.set,
                "peek" => &mut companions.peek,
                "uncached" => &mut companions.uncached,
                _ => {
                    errors.push(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown companion `{text}`{}; the companions are {}",
                            crate::errors::did_you_mean(&text, Companions::NAMES),
                            crate::errors::name_list(Companions::NAMES)
                        ),
                    ));
                    continue;
                }
            };
            if *flag {
                errors.push(syn::Error::new(
                    name.span(),
                    format!("companion `{text}` is listed twice"),
                ));
            }
            *flag = true;
        }
        errors.finish()?;
        Ok(companions)
    }
}

/// `tags = ["user:{id}", "all"]` (or, for `#[invalidates]`, `tag = "user:{id}"`): string literals, each a key
/// template checked later against the function's arguments.
pub(crate) fn expect_tags(option: RawOption) -> syn::Result<Vec<LitStr>> {
    let form = "tags = [\"user:{id}\", \"users\"]";
    let expr = expect_expr(option, form)?;
    let elems: Vec<&Expr> = match peel(&expr) {
        Expr::Array(array) => array.elems.iter().collect(),
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => vec![&expr],
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!("expected a list of tag templates: `{form}`"),
            ))
        }
    };
    let mut errors = Errors::default();
    let mut tags = Vec::new();
    for elem in elems {
        match peel(elem) {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => tags.push(lit.clone()),
            other => errors.push(syn::Error::new_spanned(
                other,
                "a tag must be a string literal, a template such as \"user:{user.id}\"",
            )),
        }
    }
    errors.finish()?;
    Ok(tags)
}

impl CachedOptions {
    /// Parses the options of the caching macro `kind`, reporting every problem at once.
    pub(crate) fn parse_for(input: ParseStream<'_>, kind: MacroKind) -> syn::Result<Self> {
        let items = parse_items(input, false)?;
        let mut options = CachedOptions {
            kind,
            krate: default_crate(),
            ttl: None,
            key: None,
            prefix: None,
            region: None,
            namespace: None,
            skip: Vec::new(),
            cache: None,
            condition: None,
            time_condition: None,
            tags: Vec::new(),
            cache_err: None,
            strict: None,
            result: None,
            companions: Companions::DEFAULT,
            in_impl: false,
            ttl_jitter: None,
            strategy: Strategy::Cached,
        };
        // Strategy options, resolved into `options.strategy` after the loop.
        let mut soft_ttl: Option<(Ttl, Span, Span)> = None;
        let mut lock: Option<(bool, Span)> = None;
        let mut lock_ttl: Option<(Ttl, Span, Span)> = None;
        let mut lock_wait: Option<(Ttl, Span, Span)> = None;
        let mut early_ttl: Option<(Ttl, Span)> = None;
        let mut background = true;
        let mut on = None;
        let mut hits: Option<(Count, Span)> = None;
        let mut update_after: Option<(Count, Span)> = None;
        let mut soft_timeout: Option<(Ttl, Span, Span)> = None;
        let mut hard_timeout: Option<(Ttl, Span, Span)> = None;

        let mut errors = Errors::default();
        let known = kind.options();
        let mut seen = Seen::new(&known);
        for item in items {
            let Item::Option(option) = item else { continue };
            if let Some(error) = foreign_option(kind, &option.name) {
                errors.push(error);
                continue;
            }
            let Some(name) = errors.ok(seen.check(&option.name)) else {
                continue;
            };
            let name_span = option.name.span();
            match name.as_str() {
                "ttl" => {
                    let ttl = expect_expr(option, "ttl = \"1h30m\"").and_then(crate::ttl::parse);
                    options.ttl = errors.ok(ttl);
                }
                "key" => options.key = errors.ok(expect_str(option, "key = \"user:{id}\"")),
                "prefix" => options.prefix = errors.ok(expect_str(option, "prefix = \"users\"")),
                "region" => {
                    options.region = errors.ok(expect_str(option, "region = \"feature-name\""));
                }
                "namespace" => {
                    options.namespace =
                        errors.ok(expect_str(option, "namespace = \"tenant:{tenant_id}\""));
                }
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
                "time_condition" => {
                    options.time_condition = errors
                        .ok(parse_duration(
                            option,
                            "time_condition",
                            "time_condition = \"1s\"",
                        ))
                        .map(|(value, _)| value)
                }
                "tags" => {
                    if let Some(tags) = errors.ok(expect_tags(option)) {
                        options.tags = tags;
                    }
                }
                "cache_err" => options.cache_err = errors.ok(expect_bool(option)),
                "strict" => options.strict = errors.ok(expect_bool(option)),
                "result" => options.result = errors.ok(expect_bool(option)),
                "companions" => {
                    if let Some(companions) = errors.ok(Companions::parse(option)) {
                        options.companions = companions;
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
                "soft_ttl" => {
                    soft_ttl = errors
                        .ok(parse_duration(option, "soft_ttl", "soft_ttl = \"10m\""))
                        .map(|(value, span)| (value, span, name_span))
                }
                "lock" => lock = errors.ok(expect_bool(option)),
                "ttl_jitter" => {
                    options.ttl_jitter = errors
                        .ok(parse_duration(option, "ttl_jitter", "ttl_jitter = \"1m\""))
                        .map(|(value, _)| value)
                }
                "soft_timeout" => {
                    soft_timeout = errors
                        .ok(parse_duration(
                            option,
                            "soft_timeout",
                            "soft_timeout = \"100ms\"",
                        ))
                        .map(|(value, span)| (value, span, name_span))
                }
                "hard_timeout" => {
                    hard_timeout = errors
                        .ok(parse_duration(
                            option,
                            "hard_timeout",
                            "hard_timeout = \"2s\"",
                        ))
                        .map(|(value, span)| (value, span, name_span))
                }
                "lock_ttl" => {
                    lock_ttl = errors
                        .ok(parse_duration(option, "lock_ttl", "lock_ttl = \"5s\""))
                        .map(|(value, span)| (value, span, name_span))
                }
                "lock_wait" => {
                    lock_wait = errors
                        .ok(parse_duration(option, "lock_wait", "lock_wait = \"2s\""))
                        .map(|(value, span)| (value, span, name_span))
                }
                "early_ttl" => {
                    early_ttl = errors.ok(parse_duration(option, "early_ttl", "early_ttl = \"7m\""))
                }
                "background" => {
                    if let Some((value, _)) = errors.ok(expect_bool(option)) {
                        background = value;
                    }
                }
                "on" => on = errors.ok(expect_expr(option, "on = path::to::predicate")),
                "hits" => hits = errors.ok(parse_count(option, "hits = 100")),
                "update_after" => {
                    update_after = errors.ok(parse_count(option, "update_after = 80"))
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
        let fixed_ttl = options.ttl.as_ref().and_then(Ttl::fixed);
        options.strategy = match kind {
            MacroKind::Cached | MacroKind::Locked => {
                let locking = kind == MacroKind::Locked || lock.is_some_and(|(value, _)| value);
                if !locking {
                    for (_, _, name) in lock_ttl.iter().chain(&lock_wait) {
                        errors.push(syn::Error::new(
                            *name,
                            "this option configures the lock: add `lock = true` (or use `#[cache_locked]`)",
                        ));
                    }
                }
                if let (Some((_, _, soft)), true) = (&soft_ttl, locking) {
                    let lock_span = lock.map_or(*soft, |(_, span)| span);
                    errors.push(syn::Error::new(
                        lock_span,
                        "`lock` can't be combined with `soft_ttl`: a soft-expired value is recomputed while the stale \
                         one is still served, so there is no cold key for the lock to guard",
                    ));
                }
                for (_, _, name) in soft_timeout.iter().chain(&hard_timeout) {
                    if locking {
                        errors.push(syn::Error::new(
                            *name,
                            "factory timeouts can't be combined with `lock`: callers that stop waiting would leave \
                             the lock's waiters behind; use `soft_ttl` with `soft_timeout`, or `hard_timeout` alone",
                        ));
                    }
                }
                if let (Some((_, _, name)), None) = (&soft_timeout, &soft_ttl) {
                    errors.push(syn::Error::new(
                        *name,
                        "`soft_timeout` serves the stale value while a slow recomputation finishes, so it needs \
                         `soft_ttl` (values are stale between `soft_ttl` and `ttl`), e.g. `ttl = \"1h\", soft_ttl = \
                         \"10m\", soft_timeout = \"100ms\"`",
                    ));
                }
                if let (Some((soft, soft_span, _)), Some((hard, _, _))) =
                    (&soft_timeout, &hard_timeout)
                {
                    if let (Some(soft), Some(hard)) = (soft.fixed(), hard.fixed()) {
                        if soft >= hard {
                            errors.push(syn::Error::new(
                                *soft_span,
                                format!(
                                    "`soft_timeout` ({}) must be shorter than `hard_timeout` ({}): after the soft one \
                                     a stale value is served, after the hard one the call gives up",
                                    crate::ttl::show(soft),
                                    crate::ttl::show(hard)
                                ),
                            ));
                        }
                    }
                }
                let timed = soft_timeout.is_some() || hard_timeout.is_some();
                match soft_ttl {
                    Some((soft_ttl, value_span, name_span)) if !locking => {
                        if options.ttl.is_none() && !seen.given("ttl") {
                            errors.push(syn::Error::new(
                                name_span,
                                "`soft_ttl` needs a `ttl`: the hard limit until which a stale value may be served, \
                                 e.g. `ttl = \"1h\", soft_ttl = \"10m\"`",
                            ));
                        }
                        shorter_than_ttl(
                            &mut errors,
                            fixed_ttl,
                            &soft_ttl,
                            value_span,
                            "soft_ttl",
                            "after `soft_ttl` the value is recomputed, until `ttl` it may still be served on errors",
                        );
                        if timed {
                            Strategy::Timed {
                                soft_ttl: Some(soft_ttl),
                                soft_timeout: soft_timeout.map(|(value, _, _)| value),
                                hard_timeout: hard_timeout.map(|(value, _, _)| value),
                            }
                        } else {
                            Strategy::Soft { soft_ttl }
                        }
                    }
                    _ if locking => Strategy::Locked {
                        lock_ttl: lock_ttl.map(|(value, _, _)| value),
                        lock_wait: lock_wait.map(|(value, _, _)| value),
                    },
                    _ if timed => Strategy::Timed {
                        soft_ttl: None,
                        soft_timeout: soft_timeout.map(|(value, _, _)| value),
                        hard_timeout: hard_timeout.map(|(value, _, _)| value),
                    },
                    _ => Strategy::Cached,
                }
            }
            MacroKind::Early => {
                if options.ttl.is_none() && !seen.given("ttl") {
                    errors.push(syn::Error::new(
                        Span::call_site(),
                        "`#[cache_early]` needs a `ttl`, e.g. `#[cache_early(ttl = \"10m\", early_ttl = \"7m\")]`",
                    ));
                }
                if let Some((value, span)) = &early_ttl {
                    shorter_than_ttl(
                        &mut errors,
                        fixed_ttl,
                        value,
                        *span,
                        "early_ttl",
                        "the value is refreshed after `early_ttl` and expires after `ttl`",
                    );
                }
                Strategy::Early {
                    early_ttl: early_ttl.map(|(value, _)| value),
                    background,
                }
            }
            MacroKind::Failover => Strategy::Failover { on },
            MacroKind::Hit => {
                for (name, count) in [("hits", &hits), ("update_after", &update_after)] {
                    if let Some((Count::Fixed(0), span)) = count {
                        errors.push(syn::Error::new(
                            *span,
                            format!("`{name}` must be at least 1"),
                        ));
                    }
                }
                if let (Some((Count::Fixed(max), _)), Some((Count::Fixed(after), span))) =
                    (&hits, &update_after)
                {
                    if after >= max && *after > 0 {
                        errors.push(syn::Error::new(
                            *span,
                            format!(
                                "`update_after` ({after}) must be less than `hits` ({max}): the refresh starts at that \
                                 hit, before the value is used up"
                            ),
                        ));
                    }
                }
                match hits {
                    Some((hits, _)) => Strategy::Hits {
                        hits,
                        update_after: update_after.map(|(value, _)| value),
                    },
                    // Given but invalid: that error was reported already.
                    None if seen.given("hits") => Strategy::Cached,
                    None => {
                        errors.push(syn::Error::new(
                            Span::call_site(),
                            "`#[cache_hit]` needs `hits`, the number of times a value is served, e.g. \
                             `#[cache_hit(ttl = \"1h\", hits = 100)]`",
                        ));
                        Strategy::Cached
                    }
                }
            }
        };
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
    /// `tag = "user:{id}"` / `tags = [...]`: tag templates whose entries are dropped after success.
    pub(crate) tags: Vec<LitStr>,
    /// `namespace = "tenant:{tenant_id}"`: a namespace cleared after success.
    pub(crate) namespace: Option<LitStr>,
}

const INVALIDATES_OPTIONS: &[&str] = &["cache", "result", "crate", "tag", "tags", "namespace"];

impl Parse for InvalidatesArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let items = parse_items(input, true)?;
        let mut args = InvalidatesArgs {
            krate: default_crate(),
            cache: None,
            result: None,
            targets: Vec::new(),
            tags: Vec::new(),
            namespace: None,
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
                "namespace" => {
                    args.namespace =
                        errors.ok(expect_str(option, "namespace = \"tenant:{tenant_id}\""));
                }
                "tag" | "tags" => {
                    if let Some(tags) = errors.ok(expect_tags(option)) {
                        args.tags.extend(tags);
                    }
                }
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
