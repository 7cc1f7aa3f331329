// swift-tools-version:5.9
// Passcrow for Swift: the UniFFI-generated Sources/Passcrow/passcrow.swift
// over libpasscrow, shipped as an XCFramework (binary target passcrowFFI).
// Build the XCFramework on a Mac first: ./build-xcframework.sh (see
// docs/bindings.md). The generated sources are checked in and kept in step
// with the Rust crate by scripts/test.d/30-bindings.sh.
import PackageDescription

let package = Package(
    name: "Passcrow",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Passcrow", targets: ["Passcrow"]),
    ],
    targets: [
        // Static libpasscrow.a per platform, with Headers/ (passcrowFFI.h
        // and module.modulemap declaring the `passcrowFFI` module).
        .binaryTarget(name: "passcrowFFI", path: "passcrowFFI.xcframework"),
        .target(
            name: "Passcrow",
            dependencies: ["passcrowFFI"],
            path: "Sources/Passcrow"
        ),
    ]
)
