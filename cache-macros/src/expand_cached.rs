//! Code generation for `#[cached]`.
//!
//! The annotated `async fn NAME` keeps its signature and attributes; its body (the user's tokens, unparsed) moves
//! into `NAME_uncached` (private as `__NAME_uncached` unless asked for) and `NAME` becomes: render the key with the
//! private `__NAME_key(&args)`, then `__private::cached_with(shape, &cache, key, options, NAME_uncached(args)).await`.
//! The companions asked for (`_key`, `_invalidate`, `_invalidate_all`, `_refresh`, `_set`, `_peek`, `_uncached`;
//! by default `_invalidate` and `_invalidate_all`) are small wrappers around the same key function. With
//! `companions = false` (trait impls) the body stays inline as an `async move` block and nothing else is generated.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Generics, Ident, Path, ReturnType, Signature, Type};

use crate::attr::{CachedOptions, Count, MacroKind, Strategy};
use crate::errors::{name_list, Errors};
use crate::item::FnItem;
use crate::sig::{self, mentions_ident, SigInfo};
use crate::template::Template;

/// Checks the parts of a signature neither macro supports.
pub(crate) fn check_signature(sig: &Signature, macro_name: &str, errors: &mut Errors) {
    check_signature_parts(sig, macro_name, false, errors);
}

/// [`check_signature`], accepting a non-async `fn` when `allow_sync`.
pub(crate) fn check_signature_parts(
    sig: &Signature,
    macro_name: &str,
    allow_sync: bool,
    errors: &mut Errors,
) {
    if sig.asyncness.is_none() && !allow_sync {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("`#[{macro_name}]` can only be applied to an `async fn`"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("`#[{macro_name}]` can't be applied to a `const fn`"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("`#[{macro_name}]` can't be applied to an `unsafe fn`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("`#[{macro_name}]` can't be applied to an `extern` function"),
        ));
    }
}

/// Attributes that must follow the function onto its companions: conditional compilation, lint levels and
/// `#[doc(hidden)]`.
pub(crate) fn forwarded_attrs(attrs: &[Attribute]) -> Vec<&Attribute> {
    attrs
        .iter()
        .filter(|attr| {
            let path = attr.path();
            ["cfg", "allow", "warn", "deny", "forbid", "expect"].iter().any(|name| path.is_ident(name))
                || (path.is_ident("doc")
                    && matches!(&attr.meta, syn::Meta::List(list) if mentions_ident(list.tokens.clone(), "hidden")))
        })
        .collect()
}

/// Everything the generators share.
struct Ctx<'a> {
    options: &'a CachedOptions,
    item: &'a FnItem,
    info: SigInfo,
    krate: &'a Path,
    /// `krate` spanned at the return type, for calls whose errors are about the output type.
    krate_out: TokenStream,
    name: &'a Ident,
    /// Whether this is an associated function (`Self::` paths, `type_name::<Self>()` in the default key).
    in_impl: bool,
    /// Whether the non-body companions take `&self`.
    companion_receiver: bool,
    template: Option<Template>,
    /// `tags = [...]`, each a template rendered like the key.
    tags: Vec<Template>,
    /// `namespace = "..."`, rendered like the key.
    namespace: Option<Template>,
    shape: TokenStream,
    /// Whether the shape stores the `Ok` of a `Result` output (`OkOnly`, `StrictOk`) rather than the whole output.
    stores_ok: bool,
    out: Type,
    /// A non-async `fn`: `NAME` and the companions block on the async strategy through `__private::sync_runner`.
    sync: bool,
}

/// Rejects arguments a spawned body can't take: the body future outlives the call, so it must own everything.
/// Reported at the argument instead of the borrow checker's errors about the generated code.
fn check_owned_args(item: &FnItem, options: &CachedOptions, errors: &mut Errors) {
    let fix = match options.strategy {
        Strategy::Early { .. } => "; or use `background = false`",
        _ => "",
    };
    let why = match options.strategy {
        Strategy::Early { .. } => "background refresh outlives the call".to_owned(),
        Strategy::Timed { .. } => {
            "with factory timeouts the body runs on its own task, which may outlive the call"
                .to_owned()
        }
        _ => format!(
            "`#[{}]` refreshes in the background, which outlives the call",
            options.kind.name()
        ),
    };
    for input in &item.sig.inputs {
        match input {
            FnArg::Receiver(receiver) if sig::borrows(&receiver.ty) => {
                errors.push(syn::Error::new_spanned(
                    input,
                    format!("{why}: take `self` by value (e.g. `self: Arc<Self>`){fix}"),
                ));
            }
            FnArg::Typed(typed) if sig::borrows(&typed.ty) => {
                errors.push(syn::Error::new_spanned(
                    input,
                    format!("{why}: take this argument by value (e.g. `String` for `&str`){fix}"),
                ));
            }
            _ => {}
        }
    }
}

/// The entry point of every caching macro (`#[cached]`, `#[cache_early]`, ...): they differ only in the
/// strategy `options` resolved to.
pub(crate) fn expand(mut options: CachedOptions, item: FnItem) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let macro_name = options.kind.name();
    let sync = item.sig.asyncness.is_none();
    check_signature_parts(
        &item.sig,
        macro_name,
        options.kind == MacroKind::Cached,
        &mut errors,
    );
    if sync && options.kind == MacroKind::Cached {
        let unsupported = match &options.strategy {
            Strategy::Cached | Strategy::Soft { .. } => None,
            Strategy::Locked { .. } => Some("`lock`"),
            Strategy::Timed { .. } => Some("factory timeouts"),
            _ => None,
        };
        if let Some(what) = unsupported {
            errors.push(syn::Error::new(
                item.sig.fn_token.span,
                format!("{what} needs an `async fn`; a sync `fn` supports `#[cached]` with `ttl`, `soft_ttl` and the common options"),
            ));
        }
        if !options.companions.any() {
            errors.push(syn::Error::new(
                item.sig.fn_token.span,
                "a sync `fn` needs its companions (it blocks on a generated async one); drop `companions = false`, \
                 or make it an `async fn`",
            ));
        }
        if let Some(region) = &options.region {
            errors.push(syn::Error::new(
                region.span(),
                "`region` needs an `async fn` (its settings may come from a config file read at run time)",
            ));
        }
    }
    let Some(info) = errors.ok(sig::analyze(&item.sig)) else {
        // `errors` holds the analysis error, so this is always `Err`.
        return errors.finish().map(|()| TokenStream::new());
    };
    let name = &item.sig.ident;
    if let ReturnType::Type(_, ty) = &item.sig.output {
        if matches!(**ty, Type::ImplTrait(_)) {
            errors.push(syn::Error::new_spanned(
                ty,
                "a cached function can't return `impl Trait`: the cache needs a concrete type to store",
            ));
        }
    }
    if options.strategy.spawns() {
        check_owned_args(&item, &options, &mut errors);
    }

    let returns_result = options
        .result
        .map_or(info.returns_result, |(value, _)| value);
    let result_hint = "add `result = true` if the return type is an alias of `Result`";
    if options.kind == MacroKind::Failover && !returns_result {
        let span = match (&options.result, &item.sig.output) {
            (Some((false, span)), _) => *span,
            (_, ReturnType::Type(_, ty)) => ty.span(),
            (_, ReturnType::Default) => item.sig.ident.span(),
        };
        errors.push(syn::Error::new(
            span,
            format!(
                "`#[cache_failover]` serves the last `Ok` when the body returns `Err`, so the function must return \
                 a `Result`; {result_hint}"
            ),
        ));
    }
    if matches!(options.strategy, Strategy::Timed { .. }) && !returns_result {
        let span = match &item.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => item.sig.ident.span(),
        };
        errors.push(syn::Error::new(
            span,
            format!(
                "factory timeouts give up with `Err(FactoryTimedOut)`, so the function must return a `Result` whose \
                 error implements `From<FactoryTimedOut>`; {result_hint}"
            ),
        ));
    }
    if let Some((true, span)) = options.cache_err {
        if !returns_result {
            errors.push(syn::Error::new(
                span,
                format!("`cache_err` only applies to functions returning `Result`; {result_hint}"),
            ));
        }
    }
    if let Some((true, span)) = options.strict {
        if !returns_result {
            errors.push(syn::Error::new(
                span,
                format!("`strict` only applies to functions returning `Result`; {result_hint}"),
            ));
        }
    }

    let names = info.binding_names();
    let no_self = format!(
        "`self` is not available in this key: `{}` has no `self` receiver",
        name.unraw()
    );
    let self_error = info.receiver.is_none().then_some(no_self.as_str());
    let template = match &options.key {
        Some(lit) => match Template::parse(lit) {
            Ok(template) => {
                errors.ok(template.check_names(&names, self_error));
                Some(template)
            }
            Err(error) => {
                errors.push(error);
                None
            }
        },
        None => None,
    };
    let no_self_tag = format!(
        "`self` is not available in this tag: `{}` has no `self` receiver",
        name.unraw()
    );
    let no_self_namespace = format!(
        "`self` is not available in this namespace: `{}` has no `self` receiver",
        name.unraw()
    );
    let namespace = options
        .namespace
        .as_ref()
        .and_then(|lit| errors.ok(Template::parse(lit)))
        .inspect(|template| {
            let self_error = info
                .receiver
                .is_none()
                .then_some(no_self_namespace.as_str());
            errors.ok(template.check_names(&names, self_error));
        });
    let mut tags = Vec::new();
    for lit in &options.tags {
        match Template::parse(lit) {
            Ok(template) => {
                let self_error = info.receiver.is_none().then_some(no_self_tag.as_str());
                errors.ok(template.check_names(&names, self_error));
                tags.push(template);
            }
            Err(error) => errors.push(error),
        }
    }
    for skipped in &options.skip {
        let skipped_name = skipped.unraw().to_string();
        if !names.contains(&skipped_name) {
            errors.push(syn::Error::new(
                skipped.span(),
                format!(
                    "`skip` names an unknown argument `{skipped_name}`{}; the arguments are {}",
                    crate::errors::did_you_mean(&skipped_name, names.iter().map(String::as_str)),
                    name_list(names.iter().map(String::as_str))
                ),
            ));
        }
    }
    let cache_uses_self = options
        .cache
        .as_ref()
        .is_some_and(|cache| mentions_ident(quote!(#cache), "self"));
    if cache_uses_self && info.receiver.is_none() {
        if let Some(cache) = &options.cache {
            errors.push(syn::Error::new_spanned(
                cache,
                format!(
                    "`cache` uses `self`, but `{}` has no `self` receiver",
                    name.unraw()
                ),
            ));
        }
    }
    errors.finish()?;
    if namespace.is_some() {
        // Every entry of one namespace is dropped by clearing it; there is no "every namespace" to scan.
        options.companions.invalidate_all = false;
    }
    let options = options;

    let krate = &options.krate;
    let strict = options.strict.is_some_and(|(value, _)| value);
    let cache_err = options.cache_err.is_some_and(|(value, _)| value);
    // Failover stores `Ok` values only, whatever the options (it has no shape parameter).
    let shape_name = if options.kind == MacroKind::Failover {
        "OkOnly"
    } else if strict {
        "StrictOk"
    } else if returns_result && !cache_err {
        "OkOnly"
    } else {
        "Plain"
    };
    // Spanned at the return type: an output that can't be stored is reported there.
    let out_span = match &item.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => item.sig.ident.span(),
    };
    let shape_ident = Ident::new(shape_name, out_span);
    let krate_out = crate::template::respan(quote!(#krate), out_span);
    let shape = quote_spanned!(out_span=> #krate_out::__private::#shape_ident);
    let companion_receiver = options.companions.any()
        && (cache_uses_self
            || template.as_ref().is_some_and(Template::mentions_self)
            || tags.iter().any(Template::mentions_self)
            || namespace.as_ref().is_some_and(Template::mentions_self));
    let ctx = Ctx {
        options: &options,
        item: &item,
        in_impl: options.in_impl || info.receiver.is_some() || info.mentions_self_type,
        out: info.out.clone(),
        info,
        krate,
        krate_out,
        name,
        companion_receiver,
        template,
        tags,
        namespace,
        shape,
        stores_ok: shape_name != "Plain",
        sync,
    };
    Ok(if options.companions.any() {
        ctx.with_companions()
    } else {
        ctx.inline()
    })
}

/// How a companion's signature differs from the original one.
struct SigSpec {
    name: Ident,
    is_async: bool,
    /// The receiver to declare (none: an associated function).
    receiver: Option<FnArg>,
    /// An argument after the function's own (`value` of `_set`).
    extra: Option<FnArg>,
    /// Whether the function's arguments are declared.
    with_args: bool,
    output: ReturnType,
    /// Replacement generics (`_invalidate_all` drops them).
    generics: Option<Generics>,
}

/// `__name` with mixed-site hygiene: invisible to the user's code and unable to shadow it.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

impl Ctx<'_> {
    fn name_str(&self) -> String {
        self.name.unraw().to_string()
    }

    fn companion_name(&self, suffix: &str) -> Ident {
        format_ident!("{}_{}", self.name_str(), suffix, span = self.name.span())
    }

    /// An intra-doc link to the cached function.
    fn link(&self) -> String {
        if self.in_impl {
            format!("[`Self::{}`]", self.name_str())
        } else {
            format!("[`{}`]", self.name_str())
        }
    }

    /// An owned `Cache` for this call: the region's own cache, else `cache = EXPR` or the global one.
    fn cache(&self) -> TokenStream {
        let krate = self.krate;
        let fallback = self.cache_option();
        match &self.options.region {
            Some(region) => quote! {
                match #krate::__private::region_settings(#region).cache {
                    #krate::__private::Option::Some(cache) => cache,
                    #krate::__private::Option::None => #fallback,
                }
            },
            None => fallback,
        }
    }

    /// An owned `Cache` from `cache = EXPR`, or the global one.
    fn cache_option(&self) -> TokenStream {
        let krate = self.krate;
        match &self.options.cache {
            Some(expr) => {
                let c = local("__c");
                quote_spanned! {expr.span()=>
                    {
                        let #c: &#krate::__private::Cache = &(#expr);
                        ::core::clone::Clone::clone(#c)
                    }
                }
            }
            None => quote!(#krate::__private::global()),
        }
    }

    fn ttl(&self) -> TokenStream {
        crate::ttl::to_tokens(self.options.ttl.as_ref(), self.krate)
    }

    /// `expr` as a value of the function pointer type `ty` (spanned by the caller at `expr`, so a mismatch is
    /// reported there; non-capturing closures coerce).
    fn typed_fn(&self, expr: &syn::Expr, ty: TokenStream) -> TokenStream {
        let f = local("__f");
        quote!({
            let #f: #ty = #expr;
            #f
        })
    }

    /// The `Options<Out>` value: `Options::ttl(ttl)` plus a builder call per option. `ttl` names the local
    /// holding the ttl; `store` leaves out what only matters when the body runs (condition, time condition).
    fn options_value(&self, ttl: &Ident, destructure: bool, store: bool) -> TokenStream {
        let krate = self.krate;
        let out = &self.out;
        let mut value = quote!(#krate::__private::Options::<#out>::ttl(#ttl));
        if !store {
            if let Some(expr) = &self.options.condition {
                let condition =
                    self.typed_fn(expr, quote_spanned!(expr.span()=> fn(&#out) -> bool));
                value.extend(quote!(.condition(#condition)));
            }
            if let Some(min) = &self.options.time_condition {
                let min = crate::ttl::duration_tokens(min, krate);
                value.extend(quote!(.time_condition(#min)));
            }
        }
        if let Some(jitter) = &self.options.ttl_jitter {
            let jitter = crate::ttl::duration_tokens(jitter, krate);
            value.extend(quote!(.ttl_jitter(#jitter)));
        }
        if !self.tags.is_empty() {
            let tags = self.tags_block(destructure);
            value.extend(quote!(.tags(#tags)));
        }
        if !store {
            let (function, strategy) = self.call_name();
            value.extend(quote!(.named(#function, #strategy)));
        }
        value
    }

    /// The function's path and strategy, as metrics and spans report them: `concat!(module_path!(), "::NAME")`.
    fn call_name(&self) -> (TokenStream, &'static str) {
        let name = format!("::{}", self.name_str());
        let strategy = match &self.options.strategy {
            Strategy::Cached => "cached",
            Strategy::Soft { .. } => "soft",
            Strategy::Early { .. } => "early",
            Strategy::Failover { .. } => "failover",
            Strategy::Hits { .. } => "hit",
            Strategy::Locked { .. } => "locked",
            Strategy::Timed { .. } => "timed",
        };
        (
            quote!(::core::concat!(::core::module_path!(), #name)),
            strategy,
        )
    }

    /// The refresh deadline early and soft values carry, so `_refresh` and `_set` keep it. Uses the ttl local.
    fn refresh_after(&self, ttl: &Ident) -> Option<TokenStream> {
        let krate = self.krate;
        match &self.options.strategy {
            Strategy::Soft { soft_ttl }
            | Strategy::Timed {
                soft_ttl: Some(soft_ttl),
                ..
            } => Some(crate::ttl::duration_tokens(soft_ttl, krate)),
            Strategy::Early {
                early_ttl: Some(early_ttl),
                ..
            } => Some(crate::ttl::duration_tokens(early_ttl, krate)),
            // The default: a third of `ttl`, as in cashews. A run-time `ttl` of `None` (no expiry) has no third:
            // then the value is never refreshed early.
            Strategy::Early {
                early_ttl: None, ..
            } => Some(match self.options.ttl.as_ref() {
                Some(crate::ttl::Ttl::Fixed { secs, nanos }) => {
                    let third = std::time::Duration::new(*secs, *nanos) / 3;
                    let (secs, nanos) = (third.as_secs(), third.subsec_nanos());
                    quote!(#krate::__private::Duration::new(#secs, #nanos))
                }
                _ => quote!(#krate::__private::Option::map_or(
                    #ttl,
                    #krate::__private::Duration::MAX,
                    |ttl| ttl / 3
                )),
            }),
            _ => None,
        }
    }

    /// A block evaluating to the rendered tags, a `Vec<String>`.
    fn tags_block(&self, destructure: bool) -> TokenStream {
        let krate = self.krate;
        let kb = local("__kb");
        let bind = if destructure {
            self.info.destructure()
        } else {
            TokenStream::new()
        };
        let tags = self.tags.iter().map(|tag| {
            let statements = tag.render(&kb, krate);
            quote!({
                let mut #kb = #krate::__private::KeyBuilder::new();
                #statements
                #kb.finish()
            })
        });
        quote!({
            #bind
            #krate::__private::Vec::<#krate::__private::String>::from([#(#tags),*])
        })
    }

    /// The header of the default key: `module::path:NAME` or `Type::path:NAME` for associated functions.
    fn default_header(&self, kb: &Ident, glob: bool) -> TokenStream {
        let method = if glob {
            quote!(glob_literal)
        } else {
            quote!(literal)
        };
        let base = if self.in_impl {
            quote!(::core::any::type_name::<Self>())
        } else {
            quote!(::core::module_path!())
        };
        let name = format!(":{}", self.name_str());
        quote!(#kb.#method(#base); #kb.#method(#name);)
    }

    /// The default key's arguments (every binding not skipped).
    fn key_bindings(&self) -> Vec<&Ident> {
        let skipped: Vec<String> = self
            .options
            .skip
            .iter()
            .map(|s| s.unraw().to_string())
            .collect();
        self.info
            .args
            .iter()
            .flat_map(|arg| arg.bindings.iter())
            .filter(|binding| !skipped.contains(&binding.unraw().to_string()))
            .collect()
    }

    /// Statements rendering the key into the builder `kb`.
    fn key_statements(&self, kb: &Ident) -> TokenStream {
        let mut out = TokenStream::new();
        let prefix = self
            .options
            .prefix
            .as_ref()
            .map(|prefix| format!("{}:", prefix.value()));
        let bindings = self.key_bindings();
        match &self.template {
            Some(template) => {
                if let Some(text) = &prefix {
                    out.extend(quote!(#kb.literal(#text);));
                }
                out.extend(template.render(kb, self.krate));
            }
            None if !self.in_impl => {
                // One literal up to the first value, joined at compile time: each `literal` call is a bounds check
                // and a copy on every call of the cached function.
                let name = format!(":{}", self.name_str());
                let first_label = bindings
                    .first()
                    .map(|binding| format!(":{}=", binding.unraw()));
                let prefix = prefix.iter();
                let first_label = first_label.iter();
                out.extend(quote! {
                    #kb.literal(::core::concat!(#(#prefix,)* ::core::module_path!(), #name #(, #first_label)*));
                });
                for (i, binding) in bindings.iter().enumerate() {
                    if i > 0 {
                        let label = format!(":{}=", binding.unraw());
                        out.extend(quote!(#kb.literal(#label);));
                    }
                    let span = binding.span();
                    let spanned_kb =
                        Ident::new(&kb.to_string(), Span::mixed_site().located_at(span));
                    out.extend(quote_spanned!(span=> #spanned_kb.value(&#binding);));
                }
            }
            None => {
                if let Some(text) = &prefix {
                    out.extend(quote!(#kb.literal(#text);));
                }
                out.extend(self.default_header(kb, false));
                for binding in bindings {
                    let label = format!(":{}=", binding.unraw());
                    let span = binding.span();
                    let spanned_kb =
                        Ident::new(&kb.to_string(), Span::mixed_site().located_at(span));
                    out.extend(quote!(#kb.literal(#label);));
                    out.extend(quote_spanned!(span=> #spanned_kb.value(&#binding);));
                }
            }
        }
        out
    }

    /// A block evaluating to the key `String`; `destructure` binds pattern arguments first.
    fn key_block(&self, destructure: bool) -> TokenStream {
        let krate = self.krate;
        let kb = local("__kb");
        let bind = if destructure {
            self.info.destructure()
        } else {
            TokenStream::new()
        };
        let statements = self.key_statements(&kb);
        quote!({
            #bind
            let mut #kb = #krate::__private::KeyBuilder::new();
            #statements
            #kb.finish()
        })
    }

    /// With `namespace = "..."`: a statement rebinding `cache` to the namespace view for these arguments
    /// (`destructure` binds pattern arguments first). Nothing without one.
    fn namespace_statement(&self, cache: &Ident, destructure: bool) -> TokenStream {
        let Some(namespace) = &self.namespace else {
            return TokenStream::new();
        };
        let krate = self.krate;
        let kb = local("__kb");
        let bind = if destructure {
            self.info.destructure()
        } else {
            TokenStream::new()
        };
        let statements = namespace.render(&kb, krate);
        quote! {
            let #cache: #krate::__private::Cache = #cache.namespace(&{
                #bind
                let mut #kb = #krate::__private::KeyBuilder::new();
                #statements
                #kb.finish()
            });
        }
    }

    /// A block evaluating to the glob pattern matching every key of this function.
    fn pattern_block(&self) -> TokenStream {
        let krate = self.krate;
        let kb = local("__kb");
        let mut statements = TokenStream::new();
        if let Some(prefix) = &self.options.prefix {
            let text = format!("{}:", prefix.value());
            statements.extend(quote!(#kb.glob_literal(#text);));
        }
        match &self.template {
            Some(template) => statements.extend(template.render_wildcards(&kb)),
            None => {
                statements.extend(self.default_header(&kb, true));
                if !self.key_bindings().is_empty() {
                    statements.extend(quote!(#kb.glob_literal(":"); #kb.wildcard();));
                }
            }
        }
        quote!({
            let mut #kb = #krate::__private::KeyBuilder::new();
            #statements
            #kb.finish()
        })
    }

    /// Where to report problems with the output type: the declared return type, or the signature.
    fn out_span(&self) -> Span {
        match &self.item.sig.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => self.item.sig.ident.span(),
        }
    }

    /// `<Shape as Shape<Out>>::Stored`.
    fn stored(&self) -> TokenStream {
        let shape = &self.shape;
        let out = &self.out;
        let krate_out = &self.krate_out;
        quote_spanned!(self.out_span()=> <#shape as #krate_out::__private::Shape<#out>>::Stored)
    }

    /// `assert_storable::<Stored>()` at the return type, named without the `Shape` projection so that rustc reports a
    /// missing derive with `Storable`'s message; the strategy's own `Shape` bound then fails at the same span with
    /// the same unmet bound, and rustc drops that duplicate.
    fn storable_check(&self) -> TokenStream {
        let out = &self.out;
        let krate_out = &self.krate_out;
        let stored = if self.stores_ok {
            quote_spanned!(self.out_span()=> <#out as #krate_out::__private::ResultTypes>::Ok)
        } else {
            quote!(#out)
        };
        quote_spanned!(self.out_span()=> #krate_out::__private::assert_storable::<#stored>();)
    }

    /// The body of `NAME` (`refresh = false`) or `NAME_refresh`: the strategy call around `body`.
    fn strategy_body(
        &self,
        refresh: bool,
        body: TokenStream,
        key_value: TokenStream,
        destructure: bool,
    ) -> TokenStream {
        let krate = self.krate;
        let (cache, key, ttl, options) = (
            local("__cache"),
            local("__key"),
            local("__ttl"),
            local("__options"),
        );
        let ttl_value = self.ttl();
        let options_value = self.options_value(&ttl, destructure, false);
        let shape = &self.shape;
        let out = &self.out;
        // Borrow `cache = EXPR` for the call instead of cloning it: a clone is a shared reference-count write on
        // every call, which costs single-thread time and stops hits from scaling across threads. An expression
        // using `self` is cloned, because the body may take `self` by value while the cache is in use.
        let region_local = local("__region");
        let cache_binding = match (&self.options.region, &self.options.cache) {
            (Some(_), _) => {
                let fallback = self.cache_option();
                quote! {
                    let #cache: #krate::__private::Cache = match #region_local.cache.take() {
                        #krate::__private::Option::Some(cache) => cache,
                        #krate::__private::Option::None => #fallback,
                    };
                }
            }
            (None, Some(expr)) if !mentions_ident(quote!(#expr), "self") => {
                quote_spanned! {expr.span()=> let #cache: &#krate::__private::Cache = &(#expr);}
            }
            (None, _) => {
                let cache_value = self.cache_option();
                quote!(let #cache: #krate::__private::Cache = #cache_value;)
            }
        };
        // A region: read its settings once; its TTL, when it sets one, replaces the function's.
        let (region_binding, ttl_value) = match &self.options.region {
            Some(region) => (
                quote! {
                    #[#krate::__private::linkme::distributed_slice(#krate::__private::REGIONS)]
                    #[linkme(crate = #krate::__private::linkme)]
                    static __REGION_NAME: &str = #region;
                    let mut #region_local: #krate::__private::RegionSettings =
                        #krate::__private::region_settings(#region);
                },
                quote! {
                    match #region_local.ttl {
                        #krate::__private::Option::Some(ttl) => #krate::__private::Option::Some(ttl),
                        #krate::__private::Option::None => #ttl_value,
                    }
                },
            ),
            None => (TokenStream::new(), ttl_value),
        };
        let namespace_binding = self.namespace_statement(&cache, destructure);
        let storable_check = self.storable_check();
        let mut statements = quote! {
            #storable_check
            #region_binding
            #cache_binding
            #namespace_binding
            let #key: #krate::__private::String = #key_value;
            let #ttl: #krate::__private::Option<#krate::__private::Duration> = #ttl_value;
            let #options: #krate::__private::Options<#out> = #options_value;
        };
        // Caching off in the region: the body runs and the cache is not touched. The body future is created after
        // the key (which borrows the arguments the body takes).
        let body = if self.options.region.is_some() {
            let body_local = local("__body");
            statements.extend(quote! {
                let #body_local = #body;
                if !#region_local.caching {
                    return #body_local.await;
                }
            });
            quote!(#body_local)
        } else {
            body
        };
        // The strategy's own arguments, then the call. The strategy path carries the return type's span: an
        // output that can't be stored is reported there.
        let krate_out = &self.krate_out;
        let (strategy, extra): (&str, TokenStream) = if refresh {
            if let Some(after) = self.refresh_after(&ttl) {
                statements.extend(quote!(let #options = #options.refresh_after(#after);));
            }
            ("refresh_with", TokenStream::new())
        } else {
            match &self.options.strategy {
                Strategy::Cached => ("cached_with", TokenStream::new()),
                Strategy::Soft { .. } => {
                    let after = self.refresh_after(&ttl);
                    ("soft", quote!(#after,))
                }
                Strategy::Early { background, .. } => {
                    let after = self.refresh_after(&ttl);
                    let name = if *background {
                        "early"
                    } else {
                        "early_foreground"
                    };
                    (name, quote!(#after,))
                }
                Strategy::Failover { on } => {
                    let on = match on {
                        Some(expr) => {
                            let err = quote!(<#out as #krate::__private::ResultTypes>::Err);
                            let on = self
                                .typed_fn(expr, quote_spanned!(expr.span()=> fn(&#err) -> bool));
                            quote!(#krate::__private::Option::Some(#on))
                        }
                        None => quote!(#krate::__private::Option::None),
                    };
                    let call = quote_spanned! {self.out_span()=>
                        #krate_out::__private::failover(&#cache, #key, #options, #on, #body).await
                    };
                    return self.braced(quote!(#statements #call));
                }
                Strategy::Hits { hits, update_after } => {
                    let count = |count: &Count| match count {
                        Count::Fixed(n) => quote!(#n),
                        Count::Dynamic(expr) => {
                            let n = local("__n");
                            quote_spanned!(expr.span()=> { let #n: u64 = #expr; #n })
                        }
                    };
                    let hits = count(hits);
                    let update_after = match update_after {
                        Some(after) => {
                            let after = count(after);
                            quote!(#krate::__private::Option::Some(#after))
                        }
                        None => quote!(#krate::__private::Option::None),
                    };
                    ("hits", quote!(#hits, #update_after,))
                }
                Strategy::Timed {
                    soft_timeout,
                    hard_timeout,
                    ..
                } => {
                    let soft_ttl = match self.refresh_after(&ttl) {
                        Some(after) => quote!(#krate::__private::Option::Some(#after)),
                        None => quote!(#krate::__private::Option::None),
                    };
                    let mut timeouts = quote!(#krate::__private::FactoryTimeouts::default());
                    if let Some(soft) = soft_timeout {
                        let soft = crate::ttl::duration_tokens(soft, krate);
                        timeouts.extend(quote!(.soft(#soft)));
                    }
                    if let Some(hard) = hard_timeout {
                        let hard = crate::ttl::duration_tokens(hard, krate);
                        timeouts.extend(quote!(.hard(#hard)));
                    }
                    let timed_out = local("__timed_out");
                    let call = quote_spanned! {self.out_span()=>
                        match #krate_out::__private::timed(#shape, &#cache, #key, #options, #soft_ttl, #timeouts, #body).await {
                            #krate::__private::Result::Ok(out) => out,
                            #krate::__private::Result::Err(#timed_out) => {
                                #krate::__private::Result::Err(::core::convert::From::from(#timed_out))
                            }
                        }
                    };
                    return self.braced(quote!(#statements #call));
                }
                Strategy::Locked {
                    lock_ttl,
                    lock_wait,
                } => {
                    // 10 s, not the value's ttl as in cashews: a holder that dies would otherwise block the
                    // waiters for as long as the value lives (hours).
                    let lock_ttl = match lock_ttl {
                        Some(value) => crate::ttl::duration_tokens(value, krate),
                        None => quote!(#krate::__private::Duration::from_secs(10)),
                    };
                    let wait = lock_wait.as_ref().map(|wait| {
                        let wait = crate::ttl::duration_tokens(wait, krate);
                        quote!(.wait(#wait))
                    });
                    (
                        "locked",
                        quote!(#krate::__private::LockOptions::new(#lock_ttl) #wait,),
                    )
                }
            }
        };
        let strategy = Ident::new(strategy, Span::call_site());
        let call = quote_spanned! {self.out_span()=>
            #krate_out::__private::#strategy(#shape, &#cache, #key, #options, #extra #body).await
        };
        self.braced(quote!(#statements #call))
    }

    /// A block of `statements` spanned at the return type: the async fn's future is checked at its span.
    fn braced(&self, statements: TokenStream) -> TokenStream {
        let mut block = Group::new(Delimiter::Brace, statements);
        block.set_span(self.out_span());
        quote!(#block)
    }

    /// A companion signature: the original one changed as `spec` says.
    fn signature(&self, spec: SigSpec) -> Signature {
        let SigSpec {
            name,
            is_async,
            receiver,
            extra,
            with_args,
            output,
            generics,
        } = spec;
        let mut sig = self.item.sig.clone();
        sig.ident = name;
        sig.asyncness = is_async.then(|| syn::Token![async](self.item.sig.fn_token.span));
        sig.inputs = receiver.into_iter().collect();
        if with_args {
            sig.inputs.extend(self.info.wrapper_args());
        }
        sig.inputs.extend(extra);
        sig.output = output;
        if let Some(generics) = generics {
            sig.generics = generics;
        }
        sig
    }

    /// The receiver of the cached function as wrappers declare it.
    fn wrapper_receiver(&self) -> Option<FnArg> {
        self.info.wrapper_receiver().map(FnArg::Receiver)
    }

    /// `&self` for the key-level companions when the key or cache needs it.
    fn companion_receiver(&self) -> Option<FnArg> {
        let token = self.info.self_token()?;
        self.companion_receiver.then(|| syn::parse_quote!(&#token))
    }

    /// The name of a companion: `NAME_suffix` when it was asked for, else `__NAME_suffix`, private and hidden.
    fn companion_ident(&self, suffix: &str, public: bool) -> Ident {
        if public {
            self.companion_name(suffix)
        } else {
            // Located at the function's name: an error about it (an associated fn without `in_impl`) points there.
            let span = Span::mixed_site().located_at(self.name.span());
            format_ident!("__{}_{}", self.name_str(), suffix, span = span)
        }
    }

    /// `Self::f` in impls, `f` elsewhere.
    fn path_to(&self, function: &Ident) -> TokenStream {
        if self.in_impl {
            quote!(Self::#function)
        } else {
            quote!(#function)
        }
    }

    /// The call of the private key function with the wrapper's arguments, borrowed.
    fn key_call(&self) -> TokenStream {
        let function = self.path_to(&self.companion_ident("key", false));
        let turbofish = sig::turbofish(&self.item.sig, &self.info);
        // `&self` coerces to the key function's `&Self` whether `self` is `Self`, `&Self` or `Arc<Self>`.
        let receiver = self
            .companion_receiver()
            .and(self.info.self_token())
            .map(|token| quote!(&#token,));
        let args = self.info.args.iter().map(|arg| &arg.ident);
        quote!(#function #turbofish(#receiver #(&#args),*))
    }

    /// One generated function beside `NAME`: its doc (hidden without one), the attributes that must follow the
    /// function (`#[cfg]`, lints), lint allowances, `extra` attributes, and `NAME`'s visibility when `public`.
    fn companion_fn(
        &self,
        doc: Option<&str>,
        public: bool,
        extra: TokenStream,
        sig: &Signature,
        body: TokenStream,
    ) -> TokenStream {
        let forwarded = forwarded_attrs(&self.item.attrs);
        let vis = public.then_some(&self.item.vis);
        let doc = match doc {
            Some(doc) => quote!(#[doc = #doc]),
            None => quote!(#[doc(hidden)]),
        };
        quote! {
            #doc
            #(#forwarded)*
            #[allow(dead_code, unused_variables, clippy::too_many_arguments, clippy::ptr_arg)]
            #extra
            #vis #sig #body
        }
    }

    /// The name of the async companion `suffix`: `NAME_suffix`, or for a sync `fn` the hidden
    /// `__NAME_suffix_async` that its sync `NAME_suffix` blocks on.
    fn async_companion_name(&self, suffix: &str) -> Ident {
        if self.sync {
            self.companion_ident(&format!("{suffix}_async"), false)
        } else {
            self.companion_name(suffix)
        }
    }

    /// Emits an async companion: public and documented, or, for a sync `fn`, hidden — its sync twin
    /// ([`Ctx::sync_twin`]) is the public one.
    fn async_companion(
        &self,
        doc: &str,
        extra: TokenStream,
        sig: &Signature,
        body: TokenStream,
    ) -> TokenStream {
        if self.sync {
            self.companion_fn(None, false, extra, sig, body)
        } else {
            self.companion_fn(Some(doc), true, extra, sig, body)
        }
    }

    /// For a sync `fn`: the public sync `NAME_suffix` with `async_sig`'s arguments, blocking on the hidden async
    /// one through `__private::sync_runner`; `refused` is its output (using `__cache` and `__error`) when the cache
    /// cannot be used from the calling thread. Nothing for an async `fn`.
    fn sync_twin(
        &self,
        suffix: &str,
        doc: &str,
        async_sig: &Signature,
        output: ReturnType,
        refused: TokenStream,
    ) -> TokenStream {
        if !self.sync {
            return TokenStream::new();
        }
        let mut sig = async_sig.clone();
        sig.ident = self.companion_name(suffix);
        sig.asyncness = None;
        sig.output = output;
        let body = self.sync_body(&async_sig.ident, &sig, refused);
        self.companion_fn(Some(doc), true, quote!(), &sig, body)
    }

    /// What a sync `NAME` (or `_refresh`) does when the cache cannot be used: note it, then the strict error or
    /// the body, uncached.
    fn refused_runs_body(&self, uncached_call: &TokenStream) -> TokenStream {
        let krate = self.krate;
        let (shape, out) = (&self.shape, &self.out);
        let (cache, error) = (local("__cache"), local("__error"));
        quote!(#krate::__private::refused::<#shape, #out>(&#cache, #error, move || #uncached_call))
    }

    /// What a sync companion answers when the cache cannot be used: `neutral`, after noting it.
    fn refused_with(&self, neutral: TokenStream) -> TokenStream {
        let krate = self.krate;
        let (cache, error) = (local("__cache"), local("__error"));
        quote!({
            #krate::__private::note_refused(&#cache, &#error);
            #neutral
        })
    }

    /// The body of a sync wrapper with signature `sig`: run `inner` (same arguments) on the sync runner.
    fn sync_body(&self, inner: &Ident, sig: &Signature, refused: TokenStream) -> TokenStream {
        let krate = self.krate;
        let cache_value = self.cache();
        let (cache, error, runner) = (local("__cache"), local("__error"), local("__runner"));
        let function = self.path_to(inner);
        let turbofish = if sig.generics.params.is_empty() {
            TokenStream::new()
        } else {
            sig::turbofish(&self.item.sig, &self.info)
        };
        let args = sig.inputs.iter().map(|input| match input {
            FnArg::Receiver(receiver) => {
                let token = receiver.self_token;
                quote!(#token)
            }
            FnArg::Typed(typed) => {
                let pat = &typed.pat;
                quote!(#pat)
            }
        });
        let call = quote!(#function #turbofish(#(#args),*));
        // `refused` names `__cache` and `__error` with the same mixed-site hygiene, so it sees these bindings.
        quote!({
            let #cache: #krate::__private::Cache = #cache_value;
            match #krate::__private::sync_runner(&#cache) {
                #krate::__private::Result::Ok(#runner) => #runner.block_on(#call),
                #krate::__private::Result::Err(#error) => #refused,
            }
        })
    }

    /// `NAME` with the companions asked for, around one private key function that they all call.
    fn with_companions(&self) -> TokenStream {
        let companions = self.options.companions;
        let krate = self.krate;
        let krate_out = &self.krate_out;
        let item = self.item;
        let vis = &item.vis;
        let attrs = &item.attrs;
        let link = self.link();
        let out = &self.out;
        let stored = self.stored();
        let shape = &self.shape;
        let (cache, key, ttl) = (local("__cache"), local("__key"), local("__ttl"));
        let output =
            |ty: TokenStream| -> ReturnType { syn::parse_quote_spanned!(self.out_span()=> -> #ty) };
        let key_call = self.key_call();
        let mut tokens = TokenStream::new();

        // The key function: the arguments by reference, the key rendered once for `NAME` and every companion.
        let mut key_sig = self.signature(SigSpec {
            name: self.companion_ident("key", false),
            is_async: false,
            receiver: self.companion_receiver(),
            extra: None,
            with_args: false,
            output: output(quote!(#krate::__private::String)),
            generics: None,
        });
        key_sig
            .inputs
            .extend(self.info.args.iter().map(|arg| -> FnArg {
                let (ident, ty) = (&arg.ident, &arg.ty);
                // `&impl A + B` is ambiguous; `&(impl A + B)` is not.
                match ty {
                    Type::ImplTrait(_) | Type::TraitObject(_) => syn::parse_quote!(#ident: &(#ty)),
                    _ => syn::parse_quote!(#ident: &#ty),
                }
            }));
        let key_block = self.key_block(true);
        tokens.extend(self.companion_fn(None, false, quote!(#[inline]), &key_sig, key_block));

        // NAME itself; its body moves into `NAME_uncached` (private unless asked for), which `_refresh` calls too.
        let uncached_name = self.companion_ident("uncached", companions.uncached);
        let uncached_call = {
            let function = self.path_to(&uncached_name);
            let turbofish = sig::turbofish(&self.item.sig, &self.info);
            let args = self.info.call_args();
            let receiver = self.info.self_token().map(|token| quote!(#token,));
            quote!(#function #turbofish(#receiver #args))
        };
        // The strategies take the body as a future; a sync body becomes one that runs it when polled.
        let body_future = if self.sync {
            quote!(async move { #uncached_call })
        } else {
            uncached_call.clone()
        };
        let wrapper_sig = self.signature(SigSpec {
            name: if self.sync {
                self.companion_ident("async", false)
            } else {
                self.name.clone()
            },
            is_async: true,
            receiver: self.wrapper_receiver(),
            extra: None,
            with_args: true,
            output: item.sig.output.clone(),
            generics: None,
        });
        let wrapper_body = self.strategy_body(false, body_future.clone(), key_call.clone(), true);
        if self.sync {
            tokens.extend(self.companion_fn(None, false, quote!(), &wrapper_sig, wrapper_body));
            let mut sync_sig = wrapper_sig.clone();
            sync_sig.ident = self.name.clone();
            sync_sig.asyncness = None;
            let refused = self.refused_runs_body(&uncached_call);
            let body = self.sync_body(&wrapper_sig.ident, &sync_sig, refused);
            tokens.extend(quote! {
                #(#attrs)*
                #vis #sync_sig #body
            });
        } else {
            tokens.extend(quote! {
                #(#attrs)*
                #vis #wrapper_sig #wrapper_body
            });
        }

        let mut uncached_sig = item.sig.clone();
        uncached_sig.ident = uncached_name;
        let block = &item.block;
        if companions.uncached {
            let doc = format!(
                "Runs the body of {link} directly, bypassing the cache: nothing is read or stored. Generated by `#[{}]`.",
                self.options.kind.name()
            );
            tokens.extend(self.companion_fn(
                Some(&doc),
                true,
                quote!(),
                &uncached_sig,
                quote!(#block),
            ));
        } else {
            tokens.extend(self.companion_fn(None, false, quote!(), &uncached_sig, quote!(#block)));
        }

        if companions.refresh {
            let refresh_sig = self.signature(SigSpec {
                name: self.async_companion_name("refresh"),
                is_async: true,
                receiver: self.wrapper_receiver(),
                extra: None,
                with_args: true,
                output: item.sig.output.clone(),
                generics: None,
            });
            let refresh_body = self.strategy_body(true, body_future, key_call.clone(), true);
            let doc = format!(
                "Runs the body of {link} and stores its result (when it is cacheable) under the same key, replacing any cached value; the cache is not read."
            );
            tokens.extend(self.async_companion(&doc, quote!(), &refresh_sig, refresh_body));
            tokens.extend(self.sync_twin(
                "refresh",
                &doc,
                &refresh_sig,
                item.sig.output.clone(),
                self.refused_runs_body(&uncached_call),
            ));
        }

        if companions.key {
            let public_key_sig = self.signature(SigSpec {
                name: self.companion_name("key"),
                is_async: false,
                receiver: self.companion_receiver(),
                extra: None,
                with_args: true,
                output: output(quote!(#krate::__private::String)),
                generics: None,
            });
            let doc = format!("Returns the cache key {link} uses for these arguments.");
            let body = quote!({ #key_call });
            tokens.extend(self.companion_fn(
                Some(&doc),
                true,
                quote!(#[must_use]),
                &public_key_sig,
                body,
            ));
        }

        let cache_value = self.cache();
        let namespace_binding = self.namespace_statement(&cache, true);
        // `NAME_invalidate` and `NAME_invalidate_soft`: the key computed on the call, then a future that owns it.
        let key_action = |suffix: &str, doc: String, action: Ident| {
            let sig = self.signature(SigSpec {
                name: self.async_companion_name(suffix),
                is_async: false,
                receiver: self.companion_receiver(),
                extra: None,
                with_args: true,
                output: output(quote!(
                    impl ::core::future::Future<Output = bool> + ::core::marker::Send + 'static
                )),
                generics: None,
            });
            let body = quote!({
                let #cache: #krate::__private::Cache = #cache_value;
                #namespace_binding
                let #key: #krate::__private::String = #key_call;
                async move { #krate::__private::#action(&#cache, &#key).await }
            });
            let mut tokens = self.async_companion(&doc, quote!(), &sig, body);
            tokens.extend(self.sync_twin(
                suffix,
                &doc,
                &sig,
                output(quote!(bool)),
                self.refused_with(quote!(false)),
            ));
            tokens
        };
        if companions.invalidate {
            tokens.extend(key_action(
                "invalidate",
                format!(
                    "Removes the cached result of {link} for these arguments; resolves to `true` if an entry was \
                     removed.\n\nThe key is computed when this function is called, so the returned future borrows \
                     nothing."
                ),
                format_ident!("invalidate"),
            ));
        }
        if companions.invalidate_soft {
            tokens.extend(key_action(
                "invalidate_soft",
                format!(
                    "Marks the cached result of {link} for these arguments stale (soft invalidation): it stays \
                     readable, the next call recomputes it while calls arriving meanwhile get the stale value. \
                     Resolves to `true` if a value was marked."
                ),
                format_ident!("invalidate_soft"),
            ));
        }

        if companions.invalidate_all {
            let generic_names: Vec<String> = item
                .sig
                .generics
                .params
                .iter()
                .filter_map(|param| match param {
                    syn::GenericParam::Type(ty) => Some(ty.ident.to_string()),
                    syn::GenericParam::Const(konst) => Some(konst.ident.to_string()),
                    syn::GenericParam::Lifetime(_) => None,
                })
                .collect();
            let cache_tokens = self
                .options
                .cache
                .as_ref()
                .map(|cache| quote!(#cache))
                .unwrap_or_default();
            let keep_generics = generic_names
                .iter()
                .any(|name| mentions_ident(cache_tokens.clone(), name));
            let invalidate_all_sig = self.signature(SigSpec {
                name: self.async_companion_name("invalidate_all"),
                is_async: false,
                receiver: self.companion_receiver(),
                extra: None,
                with_args: false,
                output: output(quote!(
                    impl ::core::future::Future<Output = u64> + ::core::marker::Send + 'static
                )),
                generics: (!keep_generics).then(Generics::default),
            });
            let pattern_block = self.pattern_block();
            let pattern = local("__pattern");
            let doc = format!(
                "Removes every cached result of {link} (all argument values); resolves to the number of removed entries."
            );
            let body = quote!({
                let #cache: #krate::__private::Cache = #cache_value;
                let #pattern: #krate::__private::String = #pattern_block;
                async move { #krate::__private::invalidate_matching(&#cache, &#pattern).await }
            });
            tokens.extend(self.async_companion(&doc, quote!(), &invalidate_all_sig, body));
            tokens.extend(self.sync_twin(
                "invalidate_all",
                &doc,
                &invalidate_all_sig,
                output(quote!(u64)),
                self.refused_with(quote!(0)),
            ));
        }

        if companions.set {
            let used: Vec<String> = self.info.binding_names();
            let value = if used.iter().any(|name| name == "value") {
                format_ident!("cached_value")
            } else {
                format_ident!("value")
            };
            let set_sig = self.signature(SigSpec {
                name: self.async_companion_name("set"),
                is_async: true,
                receiver: self.companion_receiver(),
                extra: Some(syn::parse_quote_spanned!(self.out_span()=> #value: &#stored)),
                with_args: true,
                output: output(
                    quote!(#krate::__private::Result<(), #krate::__private::CacheError>),
                ),
                generics: None,
            });
            let doc = format!(
                "Stores `{value}` as the cached result of {link} for these arguments, with the same TTL. Fails only if \
                 the backend does."
            );
            let ttl_value = self.ttl();
            let options = local("__options");
            let set_options = self.options_value(&ttl, true, true);
            let set_refresh_after = self
                .refresh_after(&ttl)
                .map(|after| quote!(let #options = #options.refresh_after(#after);));
            let store_call = quote_spanned! {self.out_span()=>
                #krate_out::__private::store_with::<_, #out>(#shape, &#cache, &#key, &#options, #value).await
            };
            let body = quote!({
                let #cache: #krate::__private::Cache = #cache_value;
                #namespace_binding
                let #key: #krate::__private::String = #key_call;
                let #ttl: #krate::__private::Option<#krate::__private::Duration> = #ttl_value;
                let #options: #krate::__private::Options<#out> = #set_options;
                #set_refresh_after
                #store_call
            });
            tokens.extend(self.async_companion(&doc, quote!(), &set_sig, body));
            let error = local("__error");
            tokens.extend(self.sync_twin(
                "set",
                &doc,
                &set_sig,
                set_sig.output.clone(),
                quote!(#krate::__private::Result::Err(#error)),
            ));
        }

        if companions.peek {
            let peek_sig = self.signature(SigSpec {
                name: self.async_companion_name("peek"),
                is_async: true,
                receiver: self.companion_receiver(),
                extra: None,
                with_args: true,
                output: output(
                    quote_spanned!(self.out_span()=> #krate_out::__private::Option<#stored>),
                ),
                generics: None,
            });
            let doc = format!(
                "Returns the cached result of {link} for these arguments without running the body; `None` on a miss."
            );
            let peek_call = quote_spanned! {self.out_span()=>
                #krate_out::__private::peek::<_, #out>(#shape, &#cache, &#key).await
            };
            let body = quote!({
                let #cache: #krate::__private::Cache = #cache_value;
                #namespace_binding
                let #key: #krate::__private::String = #key_call;
                #peek_call
            });
            tokens.extend(self.async_companion(&doc, quote!(), &peek_sig, body));
            tokens.extend(self.sync_twin(
                "peek",
                &doc,
                &peek_sig,
                peek_sig.output.clone(),
                self.refused_with(quote!(#krate::__private::Option::None)),
            ));
        }
        tokens
    }

    /// `companions = false`: the body stays in `NAME` as an `async move` block.
    fn inline(&self) -> TokenStream {
        let item = self.item;
        let attrs = &item.attrs;
        let vis = &item.vis;
        let sig = &item.sig;
        let block = &item.block;
        let body = self.strategy_body(
            false,
            quote!(async move #block),
            self.key_block(false),
            false,
        );
        quote! {
            #(#attrs)*
            #vis #sig #body
        }
    }
}
