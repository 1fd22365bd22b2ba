//! The profile the Lambda bootstraps are deployed from. `cargo lambda build --release` (SAM's
//! `rust-cargolambda`, `scripts/build-lambda.sh`) adds `panic = "abort"`, `lto = "thin"` and
//! `codegen-units = 1` to the release profile unless the profile sets them itself. With
//! `panic = "abort"` a panicking run would kill the process before the handler reports it (no
//! error answer naming the panic, no run summary, no metrics line, and a cold start next time).
//! Thin LTO and one codegen unit are left to it on purpose (see the comment in `Cargo.toml`).

use crate::support::root;

fn release_profile() -> toml::Table {
    let path = root().join("Cargo.toml");
    let text = std::fs::read_to_string(&path).expect("Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("Cargo.toml parses");
    manifest
        .get("profile")
        .and_then(|p| p.get("release"))
        .and_then(|r| r.as_table())
        .cloned()
        .expect("a [profile.release]")
}

#[test]
fn the_deployed_bootstraps_unwind_a_panic_into_a_failed_invocation() {
    let release = release_profile();
    assert_eq!(
        release.get("panic").and_then(|v| v.as_str()),
        Some("unwind"),
        "[profile.release] must set panic = \"unwind\": {release:?}"
    );
}
