//! End-to-end tests across crates live in `tests/tests/`; helpers they share go here.
