//! Kustomizations: the pure planning of a reconcile (what to apply, in which order, what to
//! prune) and post-build substitution. The actor that carries a plan out against the
//! cluster builds on these.

pub mod plan;
pub mod substitute;
