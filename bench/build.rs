//! `voice-cold-floor`, the cold start's floor, is linked as the bootstrap is (the root
//! `build.rs`): at a fixed address on x86_64 Linux with glibc, its startup code laid out
//! by `link/hot-text.ld` in a release build, its symbols stripped. A floor linked less
//! favourably than the function would start slower and flatter the function beside it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|feature| feature == "crt-static");
    let measured_target = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !static_crt;
    if var("PROFILE") != "release" || !measured_target {
        return;
    }
    let layout = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("../link/hot-text.ld");
    println!("cargo:rerun-if-changed={}", layout.display());
    for arg in [
        "-no-pie".to_string(),
        "-Wl,--strip-all".to_string(),
        format!("-Wl,-T,{}", layout.display()),
    ] {
        println!("cargo:rustc-link-arg-bin=voice-cold-floor={arg}");
    }
}
