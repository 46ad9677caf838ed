//! Bakes the release version into the binary: `SUB2API_VERSION` (a git tag such as `v1.2.3`,
//! set by the release workflow and the Dockerfile) wins over the Cargo version.

fn main() {
    println!("cargo:rerun-if-env-changed=SUB2API_VERSION");
    let version = std::env::var("SUB2API_VERSION")
        .ok()
        .map(|v| v.trim().trim_start_matches('v').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=SUB2API_BUILD_VERSION={version}");
}
