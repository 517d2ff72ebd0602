//! Upstream connections: name resolution, the pool of pristine connections
//! to destinations, the connect step that races a destination's addresses
//! (Happy Eyeballs) under one deadline, and the socket options of every
//! session socket.

pub mod connect;
pub mod happy_eyeballs;
pub mod pool;
pub mod resolve;
pub mod socket_options;
