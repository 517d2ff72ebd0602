//! ebbsocks
pub mod proto;
