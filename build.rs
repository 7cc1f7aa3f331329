//! Build script: the shared library's SONAME, and (feature `capi`) the C
//! header.
//!
//! With `capi`, cbindgen turns the files of `src/ffi/c/` into
//! `$OUT_DIR/passcrow.h` on every build that changes them. The checked-in `include/passcrow.h` is
//! written only when `PASSCROW_WRITE_HEADER=1` (`make header`): a build
//! never edits the source tree (cargo forbids that of published crates),
//! and `tests/c_header.rs` fails when the checked-in header differs from
//! the fresh one, so a stale header cannot slip through CI. Without
//! `capi`, cbindgen is not even compiled: plain library builds stay cheap.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    // ELF platforms: libpasscrow.so's SONAME carries the major version
    // (libpasscrow.so.0), so an incompatible 1.x installs beside it.
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpasscrow.so.{major}");
    }

    #[cfg(feature = "capi")]
    header::generate();
}

#[cfg(feature = "capi")]
mod header {
    use std::env;
    use std::path::{Path, PathBuf};

    pub fn generate() {
        // A directory: cargo reruns when any file under it changes.
        println!("cargo:rerun-if-changed=src/ffi/c");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-env-changed=PASSCROW_WRITE_HEADER");
        let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
        let v = |k: &str| env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        let mut config =
            cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("reading cbindgen.toml");
        config.after_includes = Some(format!(
            "\n/** The version of libpasscrow this header belongs to. */\n\
             #define PASSCROW_VERSION \"{}\"\n\
             /** Its major version (the SONAME's: libpasscrow.so.{}). */\n\
             #define PASSCROW_VERSION_MAJOR {}\n\
             /** Its minor version. */\n\
             #define PASSCROW_VERSION_MINOR {}\n\
             /** Its patch level. */\n\
             #define PASSCROW_VERSION_PATCH {}",
            v("CARGO_PKG_VERSION"),
            v("CARGO_PKG_VERSION_MAJOR"),
            v("CARGO_PKG_VERSION_MAJOR"),
            v("CARGO_PKG_VERSION_MINOR"),
            v("CARGO_PKG_VERSION_PATCH"),
        ));
        // Only the C ABI's own files: nothing else of the crate is exported.
        let mut builder = cbindgen::Builder::new().with_config(config);
        for file in capi_files(&root.join("src/ffi/c")) {
            builder = builder.with_src(file);
        }
        let bindings = builder
            .generate()
            .expect("cbindgen could not generate include/passcrow.h");
        bindings.write_to_file(out.join("passcrow.h"));
        if env::var_os("PASSCROW_WRITE_HEADER").is_some_and(|x| x == "1") {
            bindings.write_to_file(root.join("include/passcrow.h"));
        }
    }

    /// The files of the C ABI (`src/ffi/c/`), in the order cbindgen reads
    /// them: the header lists functions in the order it finds them, so this
    /// is the header's order. `mod.rs` only declares the modules and is not
    /// read (cbindgen would follow its `mod` lines in rustfmt's alphabetical
    /// order).
    const CAPI_FILES: &[&str] = &[
        "result.rs",
        "boundary.rs",
        "handle.rs",
        "args.rs",
        "http.rs",
        "client.rs",
        "policy.rs",
        "protect.rs",
        "pack.rs",
        "verify.rs",
        "recover.rs",
        "list.rs",
        "check.rs",
    ];

    /// `CAPI_FILES` under `dir`, after checking that they are all of its
    /// `.rs` files besides `mod.rs`: a new file left out of the list would
    /// be left out of the header.
    fn capi_files(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("reading src/ffi/c").file_name())
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.ends_with(".rs") && n != "mod.rs")
            .collect();
        found.sort();
        let mut listed: Vec<String> = CAPI_FILES.iter().map(|f| f.to_string()).collect();
        listed.sort();
        assert_eq!(
            found, listed,
            "build.rs: CAPI_FILES must list every file of src/ffi/c/ but mod.rs"
        );
        CAPI_FILES.iter().map(|f| dir.join(f)).collect()
    }
}
