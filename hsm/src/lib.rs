//! A software payment HSM (issue 3).
//!
//! Crypto constructions (pure functions over key bytes, used by the HSM's operations and by card
//! simulators): [`error`], [`primitives`], [`kcv`], [`emv`], [`pin`], [`mac`], [`sm`].
//! Key management and interfaces: [`lmk`], [`keystore`], [`tr31`], [`audit`], [`ops`].
//!
//! **Only this crate ever holds clear key material, and it never returns a clear key or PIN.**

pub mod audit;
pub mod emv;
pub mod error;
pub mod kcv;
pub mod keystore;
pub mod lmk;
pub mod mac;
pub mod ops;
pub mod pin;
pub mod primitives;
#[cfg(feature = "server")]
pub mod server;
pub mod sm;
pub mod tr31;
