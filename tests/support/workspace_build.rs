//! The workspace's binaries for the tests that start them (`ssc-vcard`, `settlement`,
//! `payment-switch`, `ssc-demo`…), taken from the workspace's own test build. One file, included by
//! path (`#[path]`) into the test helpers of terminal-agent, settlement and ssc-tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of the workspace binary `bin`, after `cargo test --workspace --locked --no-run` has run
/// once in this test process, into the running test's target dir. Under `scripts/check`, which ran
/// exactly that build, it is a no-op (~0.4 s); under `cargo test -p <one crate>` it builds the
/// workspace's tests once.
///
/// Not `cargo build -p X --bin Y`: that resolves features without the workspace's
/// dev-dependencies, so it compiled a second copy of most crates and overwrote the binaries the
/// test build had left (a CI run ran out of disk on it). Panics if the build fails or `bin` is
/// not there after it.
pub fn workspace_binary(bin: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let profile_dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // <target>/<profile>/deps/<test>: binaries are in <target>/<profile>/.
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let target_dir = profile_dir.parent().unwrap().to_owned();
        let status = cargo_command()
            .args(["test", "--workspace", "--locked", "--no-run"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo test --no-run");
        assert!(status.success(), "building the workspace's tests failed");
        profile_dir
    });
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after the build", path.display());
    path
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
