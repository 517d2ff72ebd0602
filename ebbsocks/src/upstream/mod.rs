//! Upstream connections: the pool of pristine connections to destinations.

pub mod pool;
