//! Everything that talks to Close: the single HTTP client and what its answers mean.

pub mod ratelimit;
