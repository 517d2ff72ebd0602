//! Upstream connections: name resolution, the pool of pristine connections
//! to destinations, and the connect step that tries each address in turn.

pub mod connect;
pub mod pool;
pub mod resolve;
