//! Everything that talks to Close: the single HTTP client and what its answers mean.

pub mod client;
pub mod error;
pub mod ratelimit;

pub use client::{ApiKey, CallContext, ClientConfig, CloseClient, CloseRequest, CloseResponse};
pub use error::CloseError;
