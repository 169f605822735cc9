//! The bootstrap is linked as a fixed-address executable (not position-independent) on
//! x86_64 Linux: a position-independent one has ~22,700 relocations for the loader to apply
//! at every cold start, a third of a megabyte of pages written before `main` runs. Linked at
//! a fixed address, the linker applies them once: the cold start is ~14 % shorter, the peak
//! RSS after one record ~0.9 MB lower, the binary 0.5 MB smaller (docs/performance.md). The
//! price is a hardening one: the bootstrap's own code and data sit at fixed addresses (no
//! ASLR for the binary itself; the shared libraries, the stack and the heap stay randomised,
//! and relocations stay read-only). Only where it is measured: other targets (arm64 Lambda,
//! cross-built with zig) are linked as their toolchain defaults, and so is a build with
//! `-C target-feature=+crt-static` (rustc links that one as a static PIE; `-no-pie` added to
//! it made a binary that crashed at start).
//!
//! The code a cold start runs is placed first and together (`link/hot-text.ld`, a linker
//! script that both rustc's lld and `cargo lambda`'s zig take): read from a few contiguous
//! pages instead of pages spread over seven megabytes of code, the cold start is shorter and
//! the resident set smaller (docs/performance.md). The script names functions by their
//! symbols, as the toolchain it was made with (rustc 1.95.0) names them; `make hot-layout`
//! writes it again after a dependency or toolchain update, and a test (`linking`) says when
//! it is due. A function it no longer names is placed as before. x86_64 only, as measured.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=VOICE_DISPATCH_SYMBOLS");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let static_crt = features.split(',').any(|feature| feature == "crt-static");
    // x86_64 Linux with glibc, dynamically linked: where the fixed address and the layout
    // are measured.
    let measured_target = arch == "x86_64" && os == "linux" && env == "gnu" && !static_crt;
    // The release bootstrap ships without symbols. The linker drops them, unless
    // VOICE_DISPATCH_SYMBOLS is set (`make hot-layout` profiles such a build): the same
    // build, its functions named as in the one that ships.
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if release && os == "linux" && std::env::var_os("VOICE_DISPATCH_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    if measured_target {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    // Release builds only: a debug build's functions are other symbols. The path is passed
    // through `-Wl,`, which splits at commas: a checkout whose path holds one cannot link.
    if release && measured_target {
        let layout = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
            .join("link/hot-text.ld");
        println!("cargo:rerun-if-changed={}", layout.display());
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", layout.display());
    }
}
