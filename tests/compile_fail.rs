//! Bad input gets a clear compile error at the macro argument, never a panic.
//!
//! The cases under tests/ui/ build in trybuild's own project
//! (`target/tests/trybuild/microarena-tests/`), which is their `CARGO_MANIFEST_DIR`; their
//! model paths therefore climb four levels back to this workspace.

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
