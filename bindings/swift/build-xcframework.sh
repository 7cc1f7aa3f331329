#!/usr/bin/env bash
# Build passcrowFFI.xcframework for the Swift package (macOS with Xcode and
# rustup only). Run from anywhere; output: bindings/swift/passcrowFFI.xcframework.
set -euo pipefail
cd "$(dirname "$0")/../.."

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
    cargo build --release --lib --features uniffi --target "$t"
done

out=target/xcframework
rm -rf "$out" bindings/swift/passcrowFFI.xcframework
mkdir -p "$out/ios-sim" "$out/macos"
lipo -create target/aarch64-apple-ios-sim/release/libpasscrow.a \
    target/x86_64-apple-ios/release/libpasscrow.a -output "$out/ios-sim/libpasscrow.a"
lipo -create target/aarch64-apple-darwin/release/libpasscrow.a \
    target/x86_64-apple-darwin/release/libpasscrow.a -output "$out/macos/libpasscrow.a"

xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libpasscrow.a -headers bindings/swift/Headers \
    -library "$out/ios-sim/libpasscrow.a" -headers bindings/swift/Headers \
    -library "$out/macos/libpasscrow.a" -headers bindings/swift/Headers \
    -output bindings/swift/passcrowFFI.xcframework
echo "built bindings/swift/passcrowFFI.xcframework; now: swift build --package-path bindings/swift"
