//! Allocator settings, memory readings and the purge policy.
