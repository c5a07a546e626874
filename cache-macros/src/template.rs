//! Key templates: `"user:{user.id}:<account_id:hash>"`.
//!
//! A template is literal text with placeholders written `{expr}` or `<expr>` (`{{`, `}}`, `<<`, `>>` are literal
//! braces). `expr` is an argument name, optionally followed by field accesses (`user.id`, `pair.0`) and
//! zero-argument method calls (`user.name()`, `user.name().len()`), and an optional format spec `:hash`,
//! `:lower`, `:upper` or `:len`. Parsing is purely syntactic; [`Template::check_names`] then checks the roots
//! against the function's arguments. Errors point at the placeholder inside the literal where the compiler
//! allows sub-spans, otherwise at the whole literal.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Expr, LitStr, Path};

use crate::errors::{did_you_mean, name_list, Errors};

/// A format spec of a placeholder.
#[derive(Clone, Copy)]
pub(crate) enum Format {
    Hash,
    Lower,
    Upper,
    Len,
}

impl Format {
    fn variant(self) -> Ident {
        let name = match self {
            Format::Hash => "Hash",
            Format::Lower => "Lower",
            Format::Upper => "Upper",
            Format::Len => "Len",
        };
        Ident::new(name, Span::call_site())
    }
}

/// One placeholder.
pub(crate) struct Hole {
    /// The expression, every token spanned at the placeholder.
    expr: TokenStream,
    /// The argument it starts from (`self` for `self.x`).
    root: String,
    format: Option<Format>,
    span: Span,
}

/// Literal text or a placeholder.
pub(crate) enum Segment {
    Text(String),
    Hole(Hole),
}

/// A parsed key template.
pub(crate) struct Template {
    segments: Vec<Segment>,
}

/// The span of bytes `range` of the literal's value, falling back to the whole literal when the compiler gives
/// no sub-spans or the literal contains escapes.
fn sub_span(lit: &LitStr, start: usize, end: usize) -> Span {
    let token = lit.token();
    let text = token.to_string();
    let value = lit.value();
    let offset = if text.len() == value.len() + 2
        && text.starts_with('"')
        && text[1..text.len() - 1] == value
    {
        Some(1)
    } else if let Some(rest) = text.strip_prefix('r') {
        let hashes = rest.len() - rest.trim_start_matches('#').len();
        let open = 1 + hashes + 1;
        (text.len() == value.len() + 2 * open - 1
            && text.get(open..open + value.len()) == Some(value.as_str()))
        .then_some(open)
    } else {
        None
    };
    offset
        .and_then(|offset| token.subspan(offset + start..offset + end))
        .unwrap_or_else(|| lit.span())
}

/// Gives every token of `tokens` the span `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                TokenTree::Group(new)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

const PLACEHOLDER_HELP: &str =
    "a placeholder holds an argument name, a field path (`user.id`) or zero-argument method calls (`user.name()`)";

/// The root argument of a placeholder expression, or an error if the expression is not a plain access path.
fn root_of(expr: &Expr) -> Result<String, &'static str> {
    match expr {
        Expr::Path(path)
            if path.qself.is_none()
                && path.path.leading_colon.is_none()
                && path.path.segments.len() == 1 =>
        {
            let segment = &path.path.segments[0];
            if segment.arguments.is_empty() {
                Ok(segment.ident.unraw().to_string())
            } else {
                Err(PLACEHOLDER_HELP)
            }
        }
        Expr::Field(field) => root_of(&field.base),
        Expr::MethodCall(call) => {
            if !call.args.is_empty() || call.turbofish.is_some() {
                Err("methods called in a key template take no arguments")
            } else {
                root_of(&call.receiver)
            }
        }
        _ => Err(PLACEHOLDER_HELP),
    }
}

fn parse_hole(
    lit: &LitStr,
    inner: &str,
    start: usize,
    end: usize,
    open: char,
) -> syn::Result<Hole> {
    let span = sub_span(lit, start, end);
    let close = if open == '{' { '}' } else { '>' };
    let shown = format!("{open}{inner}{close}");
    let (expr_text, spec) = match inner.find(':') {
        Some(at) => (&inner[..at], Some(inner[at + 1..].trim())),
        None => (inner, None),
    };
    let expr_text = expr_text.trim();
    if expr_text.is_empty() {
        return Err(syn::Error::new(
            span,
            format!("empty placeholder `{shown}` in key template; name an argument, as in `{open}id{close}`"),
        ));
    }
    let format = match spec {
        None => None,
        Some("hash") => Some(Format::Hash),
        Some("lower") => Some(Format::Lower),
        Some("upper") => Some(Format::Upper),
        Some("len") => Some(Format::Len),
        Some(other) => {
            return Err(syn::Error::new(
                span,
                format!(
                    "unknown format spec `{other}` in `{shown}`{}; the specs are `hash`, `lower`, `upper` and `len`",
                    did_you_mean(other, ["hash", "lower", "upper", "len"])
                ),
            ))
        }
    };
    let invalid = |why: &str| {
        syn::Error::new(
            span,
            format!("invalid placeholder `{shown}` in key template: {why}"),
        )
    };
    let expr: Expr = syn::parse_str(expr_text).map_err(|_| invalid(PLACEHOLDER_HELP))?;
    let root = root_of(&expr).map_err(invalid)?;
    Ok(Hole {
        expr: respan(quote!(#expr), span),
        root,
        format,
        span,
    })
}

impl Template {
    /// Parses `lit`, reporting every syntax error in it.
    pub(crate) fn parse(lit: &LitStr) -> syn::Result<Template> {
        let value = lit.value();
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut errors = Errors::default();
        let mut chars = value.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' | '<' | '}' | '>' if chars.peek().map(|&(_, next)| next) == Some(c) => {
                    chars.next();
                    text.push(c);
                }
                '{' | '<' => {
                    let close = if c == '{' { '}' } else { '>' };
                    let rest = &value[at + 1..];
                    let end = rest
                        .find(close)
                        .filter(|&end| !rest[..end].contains(['{', '}', '<', '>']));
                    let Some(end) = end else {
                        let shown: String = value[at..]
                            .chars()
                            .take_while(|&ch| ch != close)
                            .take(24)
                            .collect();
                        errors.push(syn::Error::new(
                            sub_span(lit, at, value.len()),
                            format!(
                                "unclosed placeholder `{shown}` in key template; close it with `{close}`, or write `{c}{c}` for a literal `{c}`"
                            ),
                        ));
                        break;
                    };
                    let inner = &rest[..end];
                    if let Some(hole) = errors.ok(parse_hole(lit, inner, at, at + end + 2, c)) {
                        if !text.is_empty() {
                            segments.push(Segment::Text(std::mem::take(&mut text)));
                        }
                        segments.push(Segment::Hole(hole));
                    }
                    // Skip the placeholder's characters.
                    while chars.peek().is_some_and(|&(i, _)| i <= at + end + 1) {
                        chars.next();
                    }
                }
                '}' | '>' => errors.push(syn::Error::new(
                    sub_span(lit, at, at + 1),
                    format!("unmatched `{c}` in key template; write `{c}{c}` for a literal `{c}`"),
                )),
                other => text.push(other),
            }
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        errors.finish()?;
        Ok(Template { segments })
    }

    fn holes(&self) -> impl Iterator<Item = &Hole> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Hole(hole) => Some(hole),
            Segment::Text(_) => None,
        })
    }

    /// Whether a placeholder starts from `self`.
    pub(crate) fn mentions_self(&self) -> bool {
        self.holes().any(|hole| hole.root == "self")
    }

    /// Checks every placeholder root against the argument `names`; `self_error` is the message when `self` is
    /// used but not available (`None`: `self` is fine).
    pub(crate) fn check_names(
        &self,
        names: &[String],
        self_error: Option<&str>,
    ) -> syn::Result<()> {
        let mut errors = Errors::default();
        for hole in self.holes() {
            if hole.root == "self" {
                if let Some(message) = self_error {
                    errors.push(syn::Error::new(hole.span, message));
                }
            } else if !names.contains(&hole.root) {
                errors.push(syn::Error::new(
                    hole.span,
                    format!(
                        "unknown argument `{}` in key template{}; the arguments are {}",
                        hole.root,
                        did_you_mean(&hole.root, names.iter().map(String::as_str)),
                        name_list(names.iter().map(String::as_str))
                    ),
                ));
            }
        }
        errors.finish()
    }

    /// Statements rendering the template into the `KeyBuilder` `kb`: literal text as is, placeholders as escaped
    /// values. Used for keys and for `#[invalidates]` patterns (where the user's literal `*` stays a wildcard).
    pub(crate) fn render(&self, kb: &Ident, krate: &Path) -> TokenStream {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => quote!(#kb.literal(#text);),
                Segment::Hole(hole) => {
                    let expr = &hole.expr;
                    let kb = Ident::new(&kb.to_string(), Span::mixed_site().located_at(hole.span));
                    match hole.format {
                        None => quote_spanned!(hole.span=> #kb.value(&(#expr));),
                        Some(format) => {
                            let variant = format.variant();
                            quote_spanned!(hole.span=>
                                #kb.formatted(&(#expr), #krate::__private::KeyFormat::#variant);
                            )
                        }
                    }
                }
            })
            .collect()
    }

    /// Statements rendering the glob pattern matching every key of the template: literal text glob-escaped,
    /// every placeholder a `*`.
    pub(crate) fn render_wildcards(&self, kb: &Ident) -> TokenStream {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => quote!(#kb.glob_literal(#text);),
                Segment::Hole(_) => quote!(#kb.wildcard();),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> syn::Result<Template> {
        Template::parse(&LitStr::new(src, Span::call_site()))
    }

    fn shape(src: &str) -> Vec<String> {
        parse(src)
            .unwrap()
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(text) => format!("T({text})"),
                Segment::Hole(hole) => format!(
                    "H({}|{})",
                    hole.root,
                    hole.expr.to_string().replace(' ', "")
                ),
            })
            .collect()
    }

    #[test]
    fn parses_both_spellings() {
        assert_eq!(
            shape("user:{user.id}:<account_id>"),
            [
                "T(user:)",
                "H(user|user.id)",
                "T(:)",
                "H(account_id|account_id)"
            ]
        );
        assert_eq!(shape("{{x}}<<y>>"), ["T({x}<y>)"]);
        assert_eq!(
            shape("{ user.name().len() : hash }"),
            ["H(user|user.name().len())"]
        );
        assert_eq!(shape("{pair.0}"), ["H(pair|pair.0)"]);
        assert_eq!(shape("{self.tenant}"), ["H(self|self.tenant)"]);
        assert_eq!(shape("{r#type}"), ["H(type|r#type)"]);
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "{", "{user", "a}", "a>", "{}", "{x:hsh}", "{x(1)}", "{x.y(1)}", "{1}", "{a::b}",
            "{a + b}", "{a:{b}",
        ] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn checks_names() {
        let names = vec!["user".to_owned(), "id".to_owned()];
        assert!(parse("{user.id}:{id}")
            .unwrap()
            .check_names(&names, None)
            .is_ok());
        assert!(parse("{usr}").unwrap().check_names(&names, None).is_err());
        assert!(parse("{self.x}")
            .unwrap()
            .check_names(&names, Some("no self"))
            .is_err());
        assert!(parse("{self.x}").unwrap().check_names(&names, None).is_ok());
    }
}
