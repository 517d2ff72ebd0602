//! Integration tests against the real server on 127.0.0.1:0. One test crate,
//! so the server library is linked once.

mod common;

mod access;
mod api;
mod api_limits;
mod auth;
mod bind;
mod cli;
mod connect;
mod dashboard;
mod deploy_files;
mod emfile;
mod faults;
mod haproxy;
mod limits;
mod metrics;
mod pool_concurrency;
mod pool_socks;
mod proxy_protocol;
mod real_clients;
mod reload;
mod reuse_port;
mod session_ends;
mod session_limits;
mod slowloris;
mod socks4;
mod socks5;
mod spike;
mod transfer;
mod udp;
