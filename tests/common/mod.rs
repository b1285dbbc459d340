//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Set to rewrite golden files and expected errors from the current output, on purpose.
pub const BLESS_ENV: &str = "DCOS_LAB_BLESS";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `actual` with the file at `path`, or rewrites the file when DCOS_LAB_BLESS is set.
pub fn assert_golden(path: &Path, actual: &str) {
    if std::env::var_os(BLESS_ENV).is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create golden dir");
        }
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read golden file {}: {e}; run with {BLESS_ENV}=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the rendered output (run with {BLESS_ENV}=1 to accept the new output):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
