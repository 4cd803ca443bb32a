//! close-gateway: the one gRPC door to the Close CRM API.
//!
//! Module map: [`config`] (flags and environment), [`server`] (tonic server, health,
//! reflection, shutdown), [`services`] (one file per gRPC service), [`close`] (the only HTTP
//! client to Close and its error and rate-limit parsing), [`limiter`] (the rate limiter shared
//! by every replica through Redis), [`error`] (the one table from errors to gRPC statuses),
//! [`emulator`] (an in-memory Close for tests, benchmarks and `--dev`), [`dev`] (the `--dev`
//! quick start), [`telemetry`] (logs and metrics).

pub mod close;
pub mod config;
pub mod dev;
pub mod emulator;
pub mod error;
pub mod limiter;
pub mod proto;
pub mod server;
pub mod services;
pub mod telemetry;
