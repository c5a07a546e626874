//! The annotated function as the macros see it: attributes, visibility and signature parsed, the body kept as the
//! user's tokens.
//!
//! The body is never parsed: it is moved into the expansion as written, so a syntax error inside it is reported by
//! rustc alone (and parsing large bodies costs compile time for nothing the macros need).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Visibility};

/// `#[attrs] vis sig { body }` with the body as tokens.
pub(crate) struct FnItem {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// The braced body, exactly as written.
    pub(crate) block: Group,
}

impl Parse for FnItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let block = match input.parse::<TokenTree>()? {
            TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => group,
            other => return Err(syn::Error::new(other.span(), "expected a function body")),
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function body"));
        }
        Ok(FnItem {
            attrs,
            vis,
            sig,
            block,
        })
    }
}

/// Where to point an error about a whole item that is not a function.
fn item_span(item: &syn::Item) -> Span {
    use syn::spanned::Spanned;
    match item {
        syn::Item::Struct(item) => item.ident.span(),
        syn::Item::Enum(item) => item.ident.span(),
        syn::Item::Union(item) => item.ident.span(),
        syn::Item::Trait(item) => item.ident.span(),
        syn::Item::Type(item) => item.ident.span(),
        syn::Item::Const(item) => item.ident.span(),
        syn::Item::Static(item) => item.ident.span(),
        syn::Item::Mod(item) => item.ident.span(),
        syn::Item::Impl(item) => item.impl_token.span(),
        other => other.span(),
    }
}

/// Parses the item a macro is applied to: a function with a body, or a spanned error saying what it is instead.
pub(crate) fn parse_fn(item: TokenStream, macro_name: &str) -> syn::Result<FnItem> {
    if let Ok(function) = syn::parse2::<FnItem>(item.clone()) {
        return Ok(function);
    }
    // A trait method without a body.
    if let Ok(function) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        if function.default.is_none() {
            return Err(syn::Error::new_spanned(
                function.sig.ident,
                format!(
                    "`#[{macro_name}]` needs a function body; put it on the method in the `impl`, not on the trait declaration"
                ),
            ));
        }
    }
    let not_a_fn = |span| {
        syn::Error::new(
            span,
            format!("`#[{macro_name}]` can only be applied to an `async fn`"),
        )
    };
    match syn::parse2::<syn::Item>(item) {
        Ok(other) => Err(not_a_fn(item_span(&other))),
        Err(_) => Err(not_a_fn(Span::call_site())),
    }
}
