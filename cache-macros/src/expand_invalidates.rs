//! Code generation for `#[invalidates(...)]`.
//!
//! Every target is turned into an invalidation future *before* the body runs, while the arguments are still
//! there: `get_user(&user, id)` becomes `get_user_invalidate(&user, id)`, whose key is rendered on the call and
//! whose future owns everything it needs (`+ 'static`), so the body may consume the arguments. `get_user(..)`
//! becomes `get_user_invalidate_all()`, a template string becomes an owned `invalidate_matching` future. The body
//! runs as an `async move` block; on success (`Ok` for a `Result`, always otherwise) the futures are awaited in
//! order.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ExprCall, ExprLit, ExprMethodCall, ExprPath, ExprRange, Lit, Path, RangeLimits};

use crate::attr::{peel, InvalidatesArgs};
use crate::errors::Errors;
use crate::item::FnItem;
use crate::sig::{self, mentions_ident, SigInfo};
use crate::template::Template;

const TARGET_HELP: &str = "a target is a call such as `get_user(&user, id)`, `Self::get_user(id)`, \
                           `self.get_user(id)`, `get_user(..)` for every entry, or a key pattern such as \"user:{id}:*\"";

/// Whether `expr` is a bare `..`.
fn is_full_range(expr: &Expr) -> bool {
    matches!(
        peel(expr),
        Expr::Range(ExprRange {
            start: None,
            end: None,
            limits: RangeLimits::HalfOpen(_),
            ..
        })
    )
}

/// Splits `args` into "every entry" (`..`) or the arguments as written; `..` mixed with others is an error.
fn classify_args<'a>(args: impl IntoIterator<Item = &'a Expr>) -> syn::Result<bool> {
    let args: Vec<&Expr> = args.into_iter().collect();
    let full = args.iter().filter(|arg| is_full_range(arg)).count();
    match (full, args.len()) {
        (0, _) => Ok(false),
        (1, 1) => Ok(true),
        _ => {
            let first = args
                .iter()
                .find(|arg| is_full_range(arg))
                .map_or(Span::call_site(), |arg| arg.span());
            Err(syn::Error::new(
                first,
                "`..` stands for every entry of the function and must be its only argument, as in `get_user(..)`",
            ))
        }
    }
}

/// A target turned into the expression creating its invalidation future.
fn target_future(
    target: &Expr,
    info: &SigInfo,
    fn_name: &str,
    cache: &dyn Fn() -> TokenStream,
    krate: &Path,
    sync: bool,
) -> syn::Result<TokenStream> {
    // A sync fn targets sync cached fns, whose public companions block; it calls their hidden async ones
    // (`__NAME_invalidate_async`), so the keys are computed before its body and the deletes run after it.
    let companion = |name: &Ident, suffix: &str| {
        if sync {
            format_ident!("__{}_{}_async", name.unraw(), suffix, span = name.span())
        } else {
            format_ident!("{}_{}", name.unraw(), suffix, span = name.span())
        }
    };
    match peel(target) {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => {
            let template = Template::parse(lit)?;
            let no_self = format!("`self` is not available in this pattern: `{fn_name}` has no `self` receiver");
            template.check_names(&info.binding_names(), info.receiver.is_none().then_some(no_self.as_str()))?;
            let kb = Ident::new("__kb", Span::mixed_site());
            let statements = template.render(&kb, krate);
            let (cache_var, pattern) = (Ident::new("__cache", Span::mixed_site()), Ident::new("__pattern", Span::mixed_site()));
            let cache_value = cache();
            Ok(quote!({
                let #cache_var: #krate::__private::Cache = #cache_value;
                let #pattern: #krate::__private::String = {
                    let mut #kb = #krate::__private::KeyBuilder::new();
                    #statements
                    #kb.finish()
                };
                async move { #krate::__private::invalidate_matching(&#cache_var, &#pattern).await }
            }))
        }
        Expr::Call(ExprCall { func, args, attrs, paren_token }) => {
            let Expr::Path(ExprPath { path, qself, .. }) = peel(func) else {
                return Err(syn::Error::new_spanned(func, TARGET_HELP));
            };
            let all = classify_args(args)?;
            let mut path = path.clone();
            let Some(last) = path.segments.last_mut() else {
                return Err(syn::Error::new_spanned(func, TARGET_HELP));
            };
            let suffix = if all { "invalidate_all" } else { "invalidate" };
            last.ident = companion(&last.ident, suffix);
            let args = if all { TokenStream::new() } else { args.to_token_stream() };
            let qself = qself.as_ref().map(|q| {
                let ty = &q.ty;
                quote!(<#ty>::)
            });
            let mut call = TokenStream::new();
            for attr in attrs {
                attr.to_tokens(&mut call);
            }
            call.extend(qself);
            path.to_tokens(&mut call);
            paren_token.surround(&mut call, |tokens| tokens.extend(args));
            Ok(call)
        }
        Expr::MethodCall(ExprMethodCall { receiver, method, turbofish, args, paren_token, .. }) => {
            let all = classify_args(args)?;
            let suffix = if all { "invalidate_all" } else { "invalidate" };
            let method = companion(method, suffix);
            let args = if all { TokenStream::new() } else { args.to_token_stream() };
            let mut call = quote!(#receiver.#method #turbofish);
            paren_token.surround(&mut call, |tokens| tokens.extend(args));
            Ok(call)
        }
        Expr::Path(path) => Err(syn::Error::new_spanned(
            path,
            format!(
                "a target must be a call; write `{}(..)` to invalidate every entry, or pass the arguments of the entry",
                path.to_token_stream().to_string().replace(' ', "")
            ),
        )),
        other => Err(syn::Error::new_spanned(other, TARGET_HELP)),
    }
}

/// The `#[invalidates]` entry point.
pub(crate) fn expand(args: InvalidatesArgs, item: FnItem) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let sync = item.sig.asyncness.is_none();
    crate::expand_cached::check_signature_parts(&item.sig, "invalidates", true, &mut errors);
    let Some(info) = errors.ok(sig::analyze(&item.sig)) else {
        return errors.finish().map(|()| TokenStream::new());
    };
    if args.targets.is_empty() && args.tags.is_empty() && args.namespace.is_none() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "`#[invalidates]` needs at least one target; {TARGET_HELP}, a tag such as `tag = \"user:{{id}}\"`, \
                 or a namespace such as `namespace = \"tenant:{{tenant_id}}\"`"
            ),
        ));
    }
    let krate = &args.krate;
    let cache = || match &args.cache {
        Some(expr) => {
            let c = Ident::new("__c", Span::mixed_site());
            quote_spanned! {expr.span()=>
                {
                    let #c: &#krate::__private::Cache = &(#expr);
                    ::core::clone::Clone::clone(#c)
                }
            }
        }
        None => quote!(#krate::__private::global()),
    };
    let fn_name = item.sig.ident.unraw().to_string();
    let mut futures = Vec::new();
    for target in &args.targets {
        if let Some(future) = errors.ok(target_future(target, &info, &fn_name, &cache, krate, sync))
        {
            futures.push(future);
        }
    }
    if let Some(future) = errors.ok(tags_future(&args.tags, &info, &fn_name, &cache, krate)) {
        futures.extend(future);
    }
    if let Some(lit) = &args.namespace {
        if let Some(future) = errors.ok(namespace_future(lit, &info, &fn_name, &cache, krate)) {
            futures.push(future);
        }
    }
    errors.finish()?;

    let returns_result = args.result.map_or(info.returns_result, |(value, _)| value);
    let names: Vec<Ident> = (0..futures.len())
        .map(|i| format_ident!("__invalidate_{}", i, span = Span::mixed_site()))
        .collect();
    let out = local_out();
    let annotation = if mentions_ident(info.out.to_token_stream(), "impl") {
        TokenStream::new()
    } else {
        let ty = &info.out;
        quote!(: #ty)
    };
    let awaits = quote!(#(let _ = #names.await;)*);
    let invalidate = awaits.clone();
    let invalidate = if returns_result {
        quote!(if #krate::__private::Result::is_ok(&#out) { #invalidate })
    } else {
        invalidate
    };
    let FnItem {
        attrs,
        vis,
        sig,
        block,
    } = &item;
    if sync {
        // The body runs as written; the deletes, after it, on the sync runner of this fn's cache.
        let (runner_cache, error) = (
            Ident::new("__runner_cache", Span::mixed_site()),
            Ident::new("__error", Span::mixed_site()),
        );
        let cache_value = cache();
        let run = quote! {
            let #runner_cache: #krate::__private::Cache = #cache_value;
            match #krate::__private::sync_runner(&#runner_cache) {
                #krate::__private::Result::Ok(runner) => runner.block_on(async move { #awaits }),
                #krate::__private::Result::Err(#error) => {
                    #krate::__private::note_refused(&#runner_cache, &#error)
                }
            }
        };
        let run = if returns_result {
            quote!(if #krate::__private::Result::is_ok(&#out) { #run })
        } else {
            run
        };
        return Ok(quote! {
            #(#attrs)*
            #vis #sig {
                #(let #names = #futures;)*
                let #out #annotation = (move || #block)();
                #run
                #out
            }
        });
    }
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #(let #names = #futures;)*
            let #out #annotation = async move #block.await;
            #invalidate
            #out
        }
    })
}

/// `tag = "user:{id}"` targets: the tags rendered now (like `#[cached]` keys), one future deleting them all.
fn tags_future(
    tags: &[syn::LitStr],
    info: &SigInfo,
    fn_name: &str,
    cache: &dyn Fn() -> TokenStream,
    krate: &Path,
) -> syn::Result<Option<TokenStream>> {
    if tags.is_empty() {
        return Ok(None);
    }
    let mut errors = Errors::default();
    let no_self =
        format!("`self` is not available in this tag: `{fn_name}` has no `self` receiver");
    let kb = Ident::new("__kb", Span::mixed_site());
    let mut rendered = Vec::new();
    for lit in tags {
        let Some(template) = errors.ok(Template::parse(lit)) else {
            continue;
        };
        errors.ok(template.check_names(
            &info.binding_names(),
            info.receiver.is_none().then_some(no_self.as_str()),
        ));
        let statements = template.render(&kb, krate);
        rendered.push(quote!({
            let mut #kb = #krate::__private::KeyBuilder::new();
            #statements
            #kb.finish()
        }));
    }
    errors.finish()?;
    let (cache_var, tags_var) = (
        Ident::new("__cache", Span::mixed_site()),
        Ident::new("__tags", Span::mixed_site()),
    );
    let cache_value = cache();
    Ok(Some(quote!({
        let #cache_var: #krate::__private::Cache = #cache_value;
        let #tags_var = #krate::__private::Vec::<#krate::__private::String>::from([#(#rendered),*]);
        async move { #krate::__private::invalidate_tags(&#cache_var, &#tags_var).await }
    })))
}

/// `namespace = "tenant:{id}"`: the name rendered now, one future clearing that namespace.
fn namespace_future(
    lit: &syn::LitStr,
    info: &SigInfo,
    fn_name: &str,
    cache: &dyn Fn() -> TokenStream,
    krate: &Path,
) -> syn::Result<TokenStream> {
    let template = Template::parse(lit)?;
    let no_self =
        format!("`self` is not available in this namespace: `{fn_name}` has no `self` receiver");
    template.check_names(
        &info.binding_names(),
        info.receiver.is_none().then_some(no_self.as_str()),
    )?;
    let kb = Ident::new("__kb", Span::mixed_site());
    let statements = template.render(&kb, krate);
    let (cache_var, name_var) = (
        Ident::new("__cache", Span::mixed_site()),
        Ident::new("__namespace", Span::mixed_site()),
    );
    let cache_value = cache();
    Ok(quote!({
        let #cache_var: #krate::__private::Cache = #cache_value;
        let #name_var: #krate::__private::String = {
            let mut #kb = #krate::__private::KeyBuilder::new();
            #statements
            #kb.finish()
        };
        async move { #krate::__private::clear_namespace(&#cache_var, &#name_var).await }
    }))
}

fn local_out() -> Ident {
    Ident::new("__out", Span::mixed_site())
}
