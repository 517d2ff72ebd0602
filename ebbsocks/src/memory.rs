// TEMPORARY STUB (not committed): replaced by the real memory module on merge.
use crate::config::MemoryConfig;
use std::sync::Arc;
#[derive(Debug)]
pub struct MemoryMonitor;
impl MemoryMonitor {
    pub fn new(_c: &MemoryConfig) -> Arc<Self> {
        Arc::new(Self)
    }
    pub fn connection_opened(&self) {}
    pub fn connection_closed(&self) {}
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({"rss_bytes": 1})
    }
}
pub fn configure(_c: &MemoryConfig) -> Result<(), String> {
    Ok(())
}
