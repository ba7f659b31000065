//! The build script of every function crate (`build = "../bootstrap-link.rs"`): how a
//! function's bootstrap is linked for Lambda, in a release build for Linux. Debug and test
//! builds, and the binaries of the workspace's tools, are left as they are; so is every
//! dependency (`rustc-link-arg-bins` reaches the function binaries only: `crc-fast` builds a
//! shared library, which must stay position-independent).
//!
//! * **A position-dependent executable** (`-no-pie`). A position-independent one carries a
//!   dynamic relocation for every pointer in its read-only data (0.58 MB of `.rela.dyn` in the
//!   admin API's), which the loader applies at every cold start; Lambda gains little from a
//!   randomised load address for a process that lives as long as its execution environment.
//! * **No unwind tables** in the `release` profile, which aborts on panic (`panic = "abort"`):
//!   `bootstrap-link.ld` discards `.eh_frame` and `.eh_frame_hdr` (0.98 MB of the admin API's).
//!   Such a process never unwinds: a panic prints its message and location and aborts; only a
//!   backtrace (`RUST_BACKTRACE`) comes out empty. The profile is told by its directory
//!   (`OUT_DIR`), since a build script's `CARGO_CFG_PANIC` is the target's default, not the
//!   profile's; `fast`, which inherits from `release` and unwinds, keeps its tables.
//!
//! docs/benchmarks/deployment.md has the figures.

fn main() {
    println!("cargo:rerun-if-changed=../bootstrap-link.rs");
    println!("cargo:rerun-if-changed=../bootstrap-link.ld");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux" || var("PROFILE") != "release" {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-no-pie");
    // The profile's own directory (`…/release/build/<crate>/out`): `release` aborts on panic;
    // `fast`, which inherits from it, unwinds (Cargo.toml), and keeps its unwind tables.
    let out_dir = std::path::PathBuf::from(var("OUT_DIR"));
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    if profile_dir == Some("release") {
        let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("../bootstrap-link.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
