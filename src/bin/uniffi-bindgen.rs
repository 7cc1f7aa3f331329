//! UniFFI's bindings generator, built against the same uniffi version as the
//! scaffolding in `src/ffi/uniffi.rs`. Generate in library mode from the
//! built cdylib:
//!
//! ```sh
//! cargo build --release --features uniffi
//! cargo run --features uniffi-cli --bin uniffi-bindgen -- generate \
//!     --library target/release/libpasscrow.so --language python --out-dir out
//! ```

fn main() {
    uniffi::uniffi_bindgen_main()
}
