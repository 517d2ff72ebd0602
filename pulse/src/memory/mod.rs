//! Reading a server's memory from outside it: `/proc/PID` when it runs on
//! this machine, or the JSON of its HTTP memory endpoint.
//!
//! Reads are blocking on purpose: they run on the sampler's own thread, so
//! thousands of connecting tasks on the runtime cannot delay a sample.

mod http;
mod procfs;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use http::{parse_memory_json, HttpUrl};
pub use procfs::{parse_kib_field, reading_from_proc};

/// One memory reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub rss_bytes: u64,
    /// Anonymous (heap, stacks) part of RSS, when the source tells it.
    pub rss_anon_bytes: Option<u64>,
    /// Every other number the source gave, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub enum Source {
    Pid(u32),
    /// The endpoint, and the bearer token it wants, if any.
    Url(HttpUrl, Option<String>),
}

impl Source {
    pub fn read(&self) -> Result<Reading, String> {
        match self {
            Source::Pid(pid) => procfs::read_pid(*pid),
            Source::Url(url, token) => {
                let body = url.get(Duration::from_secs(2), token.as_deref())?;
                parse_memory_json(&body)
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Pid(p) => write!(f, "/proc/{p}"),
            Source::Url(u, _) => write!(f, "{u}"),
        }
    }
}
