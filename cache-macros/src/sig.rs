//! Analysis of the annotated function's signature: receiver, arguments (with non-identifier patterns rebound to
//! generated names), the names a key may use, the return type and its syntactic shape.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericParam, Ident, Pat, PatIdent, Receiver, ReturnType, Signature, Type};

use crate::errors::Errors;

/// One non-receiver argument.
pub(crate) struct Arg {
    /// The name the argument has in generated wrappers: the user's identifier, or `__arg_N` for a pattern.
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// For a pattern argument, the pattern that binds its names by reference from `&ident`.
    pub(crate) by_ref_pattern: Option<Pat>,
    /// Names this argument makes available to keys, in order.
    pub(crate) bindings: Vec<Ident>,
}

/// What the macros need to know about a signature.
pub(crate) struct SigInfo {
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
    /// The declared output type (`()` when there is none).
    pub(crate) out: Type,
    /// Whether the output's last path segment is `Result`.
    pub(crate) returns_result: bool,
    /// Whether the signature mentions `Self` (so the function must be an associated function).
    pub(crate) mentions_self_type: bool,
    /// Whether some argument type is `impl Trait` (then no turbofish may be written).
    pub(crate) has_impl_trait_arg: bool,
}

impl SigInfo {
    /// Every name a key may use, in argument order.
    pub(crate) fn binding_names(&self) -> Vec<String> {
        self.args
            .iter()
            .flat_map(|arg| arg.bindings.iter().map(|b| b.unraw().to_string()))
            .collect()
    }

    /// The receiver's `self` token, for calls that forward it.
    pub(crate) fn self_token(&self) -> Option<syn::token::SelfValue> {
        self.receiver.as_ref().map(|receiver| receiver.self_token)
    }

    /// The receiver as a wrapper declares it: without a by-value `mut`, which only the body needs.
    pub(crate) fn wrapper_receiver(&self) -> Option<Receiver> {
        self.receiver.clone().map(|mut receiver| {
            if receiver.reference.is_none() {
                receiver.mutability = None;
            }
            receiver.attrs.clear();
            receiver
        })
    }

    /// `let` statements giving pattern arguments' bindings by reference.
    pub(crate) fn destructure(&self) -> TokenStream {
        self.args
            .iter()
            .filter_map(|arg| {
                let pattern = arg.by_ref_pattern.as_ref()?;
                let ident = &arg.ident;
                Some(quote!(#[allow(unused_variables)] let #pattern = &#ident;))
            })
            .collect()
    }

    /// `a, b` for calling a function with the wrapper's arguments.
    pub(crate) fn call_args(&self) -> TokenStream {
        let idents = self.args.iter().map(|arg| &arg.ident);
        quote!(#(#idents),*)
    }

    /// The wrapper's arguments as `FnArg`s.
    pub(crate) fn wrapper_args(&self) -> Vec<FnArg> {
        self.args
            .iter()
            .map(|arg| {
                let ident = &arg.ident;
                let ty = &arg.ty;
                syn::parse_quote!(#ident: #ty)
            })
            .collect()
    }
}

/// Whether `tokens` contain the identifier `name` (anywhere, including nested groups).
pub(crate) fn mentions_ident(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions_ident(group.stream(), name),
        _ => false,
    })
}

/// Turns a pattern into one that binds every name by reference when matched against a reference: binding
/// modifiers and reference patterns go (match ergonomics does the rest, and edition 2024 rejects explicit ones
/// under a by-reference default binding mode).
struct ByRef;

impl VisitMut for ByRef {
    fn visit_pat_mut(&mut self, pat: &mut Pat) {
        if let Pat::Reference(reference) = pat {
            *pat = (*reference.pat).clone();
            self.visit_pat_mut(pat);
            return;
        }
        if let Pat::Ident(ident) = pat {
            ident.by_ref = None;
            ident.mutability = None;
        }
        syn::visit_mut::visit_pat_mut(self, pat);
    }
}

/// Collects the names a pattern binds; errors on patterns that can't be looked into.
fn collect_bindings(pat: &Pat, out: &mut Vec<Ident>, errors: &mut Errors) {
    match pat {
        Pat::Ident(PatIdent { ident, subpat, .. }) => {
            out.push(ident.clone());
            if let Some((_, sub)) = subpat {
                collect_bindings(sub, out, errors);
            }
        }
        Pat::Tuple(tuple) => tuple.elems.iter().for_each(|p| collect_bindings(p, out, errors)),
        Pat::TupleStruct(tuple) => tuple.elems.iter().for_each(|p| collect_bindings(p, out, errors)),
        Pat::Struct(strukt) => strukt.fields.iter().for_each(|field| collect_bindings(&field.pat, out, errors)),
        Pat::Slice(slice) => slice.elems.iter().for_each(|p| collect_bindings(p, out, errors)),
        Pat::Reference(reference) => collect_bindings(&reference.pat, out, errors),
        Pat::Paren(paren) => collect_bindings(&paren.pat, out, errors),
        Pat::Type(typed) => collect_bindings(&typed.pat, out, errors),
        Pat::Wild(_) | Pat::Rest(_) | Pat::Path(_) | Pat::Lit(_) | Pat::Range(_) => {}
        other => errors.push(syn::Error::new_spanned(
            other,
            "this argument pattern is not supported by the cache macros; bind the argument to a name",
        )),
    }
}

/// Analyzes `sig`. Errors on variadics and unsupported patterns.
pub(crate) fn analyze(sig: &Signature) -> syn::Result<SigInfo> {
    let mut errors = Errors::default();
    let mut receiver = None;
    let mut args = Vec::new();
    let mut has_impl_trait_arg = false;
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(typed) => {
                if matches!(*typed.ty, Type::ImplTrait(_)) {
                    has_impl_trait_arg = true;
                }
                let ty = (*typed.ty).clone();
                match &*typed.pat {
                    Pat::Ident(PatIdent {
                        ident,
                        subpat: None,
                        ..
                    }) => {
                        args.push(Arg {
                            ident: ident.clone(),
                            ty,
                            by_ref_pattern: None,
                            bindings: vec![ident.clone()],
                        });
                    }
                    pattern => {
                        let mut bindings = Vec::new();
                        collect_bindings(pattern, &mut bindings, &mut errors);
                        let mut by_ref = pattern.clone();
                        ByRef.visit_pat_mut(&mut by_ref);
                        args.push(Arg {
                            ident: format_ident!("__arg_{}", index, span = Span::mixed_site()),
                            ty,
                            by_ref_pattern: Some(by_ref),
                            bindings,
                        });
                    }
                }
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "variadic functions can't be cached",
        ));
    }
    errors.finish()?;
    let out: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let returns_result = is_result(&out);
    let mentions_self_type = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => Some(typed.ty.to_token_stream()),
            FnArg::Receiver(_) => None,
        })
        .chain([sig.output.to_token_stream(), sig.generics.to_token_stream()])
        .chain(
            sig.generics
                .where_clause
                .as_ref()
                .map(ToTokens::to_token_stream),
        )
        .any(|tokens| mentions_ident(tokens, "Self"));
    Ok(SigInfo {
        receiver,
        args,
        out,
        returns_result,
        mentions_self_type,
        has_impl_trait_arg,
    })
}

/// Finds the first borrow in a type: a reference or a lifetime other than `'static`. Function pointer types and
/// `Fn(..)` sugar are skipped: their elided lifetimes are higher-ranked, so `fn(&str) -> bool` is `'static`.
#[derive(Default)]
struct Borrows(Option<Span>);

impl VisitMut for Borrows {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if self.0.is_none() {
            self.0 = Some(reference.and_token.span);
        }
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
        if self.0.is_none() && lifetime.ident != "static" {
            self.0 = Some(lifetime.apostrophe);
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}

/// Whether a value of type `ty` may borrow from the caller, read syntactically (`&str`, `Option<&T>`,
/// `Cow<'a, str>`, `impl Trait + 'a`). Generic parameters are not judged: the compiler's own message for a
/// missing `T: 'static` is clear.
pub(crate) fn borrows(ty: &Type) -> bool {
    let mut visitor = Borrows::default();
    visitor.visit_type_mut(&mut ty.clone());
    visitor.0.is_some()
}

/// Syntactic `Result` detection: the last path segment is `Result` (`Result`, `io::Result`, `anyhow::Result`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Group(group) => is_result(&group.elem),
        Type::Paren(paren) => is_result(&paren.elem),
        _ => false,
    }
}

/// `::<T, N>` for forwarding the generic type and const parameters, or nothing when there are none or when
/// `impl Trait` arguments forbid explicit generics.
pub(crate) fn turbofish(sig: &Signature, info: &SigInfo) -> TokenStream {
    if info.has_impl_trait_arg {
        return TokenStream::new();
    }
    let params: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(ty) => Some(&ty.ident),
            GenericParam::Const(konst) => Some(&konst.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    if params.is_empty() {
        TokenStream::new()
    } else {
        quote!(::<#(#params),*>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzes_patterns_and_outputs() {
        let sig: Signature = syn::parse_quote! {
            async fn f(&self, mut a: u32, (b, ref c): (u8, u8), &Point { x, y: mut z }: &Point, _: u8) -> io::Result<()>
        };
        let info = analyze(&sig).unwrap();
        assert!(info.receiver.is_some());
        assert_eq!(info.binding_names(), ["a", "b", "c", "x", "z"]);
        assert!(info.returns_result);
        assert!(!info.mentions_self_type);
        let destructure = info.destructure().to_string();
        assert!(
            destructure.contains("let (b , c) = & __arg_2"),
            "{destructure}"
        );
        assert!(
            destructure.contains("let Point { x , y : z } = & __arg_3"),
            "{destructure}"
        );
    }

    #[test]
    fn detects_self_type() {
        let sig: Signature = syn::parse_quote!(async fn new(id: u64) -> Option<Self>);
        assert!(analyze(&sig).unwrap().mentions_self_type);
        assert!(!analyze(&sig).unwrap().returns_result);
    }
}
