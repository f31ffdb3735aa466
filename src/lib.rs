//! reportstore: a replicated document store for CPAN Testers test reports.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants. The binary in `main.rs`
//! is a thin dispatcher over this library so that integration tests and benchmarks drive the
//! same code.

#![warn(missing_docs)]

pub mod api;
pub mod codec;
pub mod config;
pub mod distinfo;
pub mod error;
pub mod generator;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod replication;
pub mod server;
pub mod store;

pub use error::{Error, Result};
