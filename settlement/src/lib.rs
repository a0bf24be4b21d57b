//! The clearing core: double-entry ledger, medical settlement, card payments, cross-region clearing.
//!
//! Not built yet: issues 5 to 8 define it. This crate exists so that the workspace has its final
//! shape from the first commit; it holds no code that pretends to work.
