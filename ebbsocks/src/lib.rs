//! ebbsocks
