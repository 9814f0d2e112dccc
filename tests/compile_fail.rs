//! Bad input gets a clear compile error at the macro argument, never a panic.
//!
//! The cases under tests/ui/ build in trybuild's own project
//! (`<target dir>/tests/trybuild/microarena-tests/`), which is their `CARGO_MANIFEST_DIR`.
//! Their model paths start with `testdata/`: a copy of tests/models and tests/ui/data made
//! there before the run, so that the cases build wherever the target directory is (a shared
//! `CARGO_TARGET_DIR` outside the clone included).

use std::path::{Path, PathBuf};

/// Copies directory `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create testdata");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

#[test]
fn compile_fail() {
    // trybuild's project: `<target dir>/tests/trybuild/<package>`; the target directory is
    // the parent of the integration tests' scratch directory.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let project = target.join("tests/trybuild").join(env!("CARGO_PKG_NAME"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("tests/models"), &project.join("testdata/models"));
    copy_dir(
        &root.join("tests/ui/data"),
        &project.join("testdata/ui/data"),
    );
    // trybuild's project does not inherit this workspace's profiles: build it without debug
    // info (only its errors matter), which keeps its copy of tract small.
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "false");
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
