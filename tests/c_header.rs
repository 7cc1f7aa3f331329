//! The checked-in C header is the one cbindgen makes from src/ffi/c/
//! now, and its version macros are Cargo.toml's version.
//!
//! build.rs (feature `capi`) writes the fresh header to `$OUT_DIR`; when
//! this test fails, regenerate the checked-in copy with `make header`
//! (`PASSCROW_WRITE_HEADER=1 cargo build --features capi`) and commit it.

use std::path::Path;

fn checked_in() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/passcrow.h");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn header_is_fresh() {
    let fresh_path = Path::new(env!("OUT_DIR")).join("passcrow.h");
    let fresh = std::fs::read_to_string(&fresh_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", fresh_path.display()));
    let old = checked_in();
    if fresh != old {
        let line = fresh
            .lines()
            .zip(old.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || fresh.lines().count().min(old.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "include/passcrow.h is stale (first difference at line {line}); \
             run `make header` and commit include/passcrow.h"
        );
    }
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let h = checked_in();
    let define = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        h.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in include/passcrow.h"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    assert_eq!(define("PASSCROW_VERSION"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        define("PASSCROW_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define("PASSCROW_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define("PASSCROW_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
}

#[test]
fn header_has_guards_and_docs() {
    let h = checked_in();
    assert!(h.contains("#ifndef PASSCROW_H\n#define PASSCROW_H"));
    assert!(h.trim_end().ends_with("#endif  /* PASSCROW_H */"));
    // Every function is documented.
    let mut prev = "";
    for l in h.lines() {
        if l.starts_with("passcrow_result passcrow_") || l.starts_with("const char *passcrow_") {
            assert_eq!(prev, " */", "undocumented: {l}");
        }
        prev = l;
    }
}
