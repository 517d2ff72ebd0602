//! Integration tests against the real server on 127.0.0.1:0. One test crate,
//! so the server library is linked once.

mod common;

mod access;
mod api;
mod api_limits;
mod auth;
mod bind;
mod cli;
mod emfile;
mod faults;
mod limits;
mod metrics;
mod pool_concurrency;
mod pool_socks;
mod real_clients;
mod session_ends;
mod session_limits;
mod slowloris;
mod socks4;
mod socks5;
mod spike;
mod transfer;
mod udp;
