//! Compile-fail tests of `#[cached]` and `#[invalidates]`: every error points at the offending tokens.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p cache-macros --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
