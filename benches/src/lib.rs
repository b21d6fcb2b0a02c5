//! Shared fixtures for kiln benchmarks.
