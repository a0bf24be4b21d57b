//! The platform's binaries for the tests that start them (ssc-demo finds them beside itself).

use std::process::Command;

/// Builds the workspace's binaries as the workspace's own test build does: `cargo test
/// --workspace --locked --no-run`. Under `scripts/check`, which ran exactly that build, it is a
/// no-op; under `cargo test -p ssc-tests` it builds the workspace's tests once.
///
/// Not `cargo build -p X --bins`: that resolves features without the workspace's
/// dev-dependencies, so it compiled a second copy of most crates and overwrote the binaries the
/// test build had left (a CI run ran out of disk on it).
pub fn ensure_binaries() {
    let status = cargo_command()
        .args(["test", "--workspace", "--locked", "--no-run"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building the workspace's tests");
}

/// `cargo`, without the variables cargo sets for a running test (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, `OUT_DIR`…): build scripts such as ring's watch them (`rerun-if-env-changed`),
/// so a cargo started with them would rebuild ring and everything above it (~2 minutes), and the
/// next plain build would rebuild it back.
fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_for_tests = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_MANIFEST_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || matches!(
                name,
                "CARGO_CRATE_NAME"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if set_for_tests {
            command.env_remove(name);
        }
    }
    command
}
