//! Code generation for `#[cached_many]`: a fn taking a slice of ids and returning one value per id, cached per id
//! through `Cache::get_or_set_many` (dogpile's `cache_multiple_on_arguments`).
//!
//! `async fn NAME(ids: &[T]) -> Vec<V> { body }` becomes `NAME` rendering one key per element, then one
//! `get_or_set_many` call whose compute runs the original body (moved into a private `__NAME_uncached`) with only
//! the elements whose keys were missing. A body that returns the wrong number of values makes the call run the body
//! for every id, uncached.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, LitStr, Pat, Path, PathArguments, ReturnType, Type};

use crate::attr::{expect_expr, expect_str, parse_items, Item};
use crate::errors::{did_you_mean, name_list, Errors};
use crate::item::FnItem;
use crate::template::Template;
use crate::ttl::Ttl;

const OPTIONS: [&str; 5] = ["ttl", "key", "prefix", "cache", "crate"];

/// The options of `#[cached_many]`.
pub(crate) struct ManyOptions {
    ttl: Option<Ttl>,
    key: Option<LitStr>,
    prefix: Option<LitStr>,
    cache: Option<syn::Expr>,
    krate: Path,
}

impl Parse for ManyOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = ManyOptions {
            ttl: None,
            key: None,
            prefix: None,
            cache: None,
            krate: crate::attr::default_crate(),
        };
        let mut errors = Errors::default();
        for item in parse_items(input, false)? {
            let Item::Option(option) = item else { continue };
            let name = option.name.unraw().to_string();
            match name.as_str() {
                "ttl" => {
                    options.ttl =
                        errors.ok(expect_expr(option, "ttl = \"10m\"").and_then(crate::ttl::parse));
                }
                "key" => options.key = errors.ok(expect_str(option, "key = \"user:{ids}\"")),
                "prefix" => options.prefix = errors.ok(expect_str(option, "prefix = \"users\"")),
                "cache" => options.cache = errors.ok(expect_expr(option, "cache = CACHE")),
                "crate" => {
                    if let Some(path) = errors.ok(crate::attr::expect_path(option)) {
                        options.krate = path;
                    }
                }
                _ => errors.push(syn::Error::new(
                    option.name.span(),
                    format!(
                        "unknown option `{name}`{}; `#[cached_many]` takes {}",
                        did_you_mean(&name, OPTIONS),
                        name_list(OPTIONS)
                    ),
                )),
            }
        }
        errors.finish()?;
        Ok(options)
    }
}

/// `T` of `&[T]`.
fn slice_element(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => match &*reference.elem {
            Type::Slice(slice) => Some(&slice.elem),
            _ => None,
        },
        _ => None,
    }
}

/// `V` of `Vec<V>`.
fn vec_element(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(path) = &**ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match args.args.first() {
            Some(GenericArgument::Type(ty)) => Some(ty),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn expand(options: ManyOptions, item: FnItem) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    crate::expand_cached::check_signature(&item.sig, "cached_many", &mut errors);
    let shape_error = "`#[cached_many]` takes a fn with one argument `ids: &[T]` returning `Vec<V>`, one value per id";
    if !item.sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.sig.generics,
            "`#[cached_many]` does not take generic fns",
        ));
    }
    let mut arg = None;
    if item.sig.inputs.len() != 1 {
        errors.push(syn::Error::new_spanned(&item.sig.inputs, shape_error));
    } else if let Some(FnArg::Typed(typed)) = item.sig.inputs.first() {
        match (&*typed.pat, slice_element(&typed.ty)) {
            (Pat::Ident(ident), Some(element))
                if ident.by_ref.is_none() && ident.subpat.is_none() =>
            {
                arg = Some((ident.ident.clone(), element.clone()));
            }
            _ => errors.push(syn::Error::new_spanned(typed, shape_error)),
        }
    } else {
        errors.push(syn::Error::new_spanned(&item.sig.inputs, shape_error));
    }
    let value = vec_element(&item.sig.output).cloned();
    if value.is_none() {
        errors.push(syn::Error::new(
            match &item.sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => item.sig.ident.span(),
            },
            shape_error,
        ));
    }
    let template = match &options.key {
        Some(lit) => errors.ok(Template::parse(lit)),
        None => None,
    };
    if let (Some(template), Some((name, _))) = (&template, &arg) {
        errors.ok(template.check_names(
            &[name.unraw().to_string()],
            Some("`#[cached_many]` fns have no `self`"),
        ));
    }
    errors.finish()?;
    let (Some((arg, element)), Some(value)) = (arg, value) else {
        return Err(syn::Error::new(Span::call_site(), shape_error));
    };

    let krate = &options.krate;
    let FnItem {
        attrs,
        vis,
        sig,
        block,
    } = &item;
    let name = &sig.ident;
    let uncached = format_ident!("__{}_uncached", name.unraw(), span = Span::mixed_site());
    let key_fn = format_ident!("__{}_key", name.unraw(), span = Span::mixed_site());
    let kb = Ident::new("__kb", Span::mixed_site());
    let prefix = options
        .prefix
        .as_ref()
        .map(|prefix| {
            let text = format!("{}:", prefix.value());
            quote!(#kb.literal(#text);)
        })
        .unwrap_or_default();
    let key_statements = match &template {
        Some(template) => template.render(&kb, krate),
        None => {
            let header = format!(":{}:{}=", name.unraw(), arg.unraw());
            quote! {
                #kb.literal(::core::module_path!());
                #kb.literal(#header);
                #kb.value(#arg);
            }
        }
    };
    let ttl = crate::ttl::to_tokens(options.ttl.as_ref(), krate);
    let cache = match &options.cache {
        Some(expr) => quote_spanned! {expr.span()=>
            ::core::clone::Clone::clone({
                let __c: &#krate::__private::Cache = &(#expr);
                __c
            })
        },
        None => quote!(#krate::__private::global()),
    };
    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached.clone();
    let (keys, refs, by_key, missing, elements) = (
        Ident::new("__keys", Span::mixed_site()),
        Ident::new("__refs", Span::mixed_site()),
        Ident::new("__by_key", Span::mixed_site()),
        Ident::new("__missing", Span::mixed_site()),
        Ident::new("__elements", Span::mixed_site()),
    );
    Ok(quote! {
        #[doc(hidden)]
        #[allow(dead_code, clippy::ptr_arg)]
        fn #key_fn(#arg: &#element) -> #krate::__private::String {
            let mut #kb = #krate::__private::KeyBuilder::new();
            #prefix
            #key_statements
            #kb.finish()
        }

        #[doc(hidden)]
        #[allow(dead_code)]
        #uncached_sig #block

        #(#attrs)*
        #vis #sig {
            let __cache: #krate::__private::Cache = #cache;
            let #keys: #krate::__private::Vec<#krate::__private::String> =
                #arg.iter().map(#key_fn).collect();
            let #refs: #krate::__private::Vec<&str> = #keys.iter().map(|key| key.as_str()).collect();
            let #by_key: ::std::collections::HashMap<&str, &#element> =
                #refs.iter().copied().zip(#arg.iter()).collect();
            let __values = __cache
                .get_or_set_many::<#value, _, _>(&#refs, #ttl, |#missing: #krate::__private::Vec<#krate::__private::String>| {
                    let #elements: #krate::__private::Vec<#element> = #missing
                        .iter()
                        .filter_map(|key| #by_key.get(key.as_str()).map(|element| ::core::clone::Clone::clone(*element)))
                        .collect();
                    async move { #uncached(&#elements).await }
                })
                .await;
            match __values {
                #krate::__private::Result::Ok(values) => values,
                #krate::__private::Result::Err(_) => #uncached(#arg).await,
            }
        }
    })
}
