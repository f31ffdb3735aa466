//! The integration tests: one binary, real servers on 127.0.0.1, real sled in temp dirs.

mod bad_input;
mod crash;
mod metabase_fixtures;
mod openapi;
mod operations;
mod releases;
mod replication;
mod search;
mod support;
mod v3;
