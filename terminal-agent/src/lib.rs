//! The terminal agent: the card-reader daemon at kiosks, hospitals and pharmacies.
//!
//! Not built yet: issue 4 ("terminal-agent") defines it. This crate exists so that the workspace
//! has its final shape from the first commit; it holds no code that pretends to work.
