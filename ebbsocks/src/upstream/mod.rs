pub mod connect;
pub mod pool;
pub mod resolve;
