//! The agent's integration tests against real servers (kubesim, git daemon, sshd, http-backend).
//! One test binary with a module per subject, so the test build links the agent once instead of
//! once per file: a dozen links of ~100 MB each were most of the test build's disk and time.
//! Run one subject with `cargo test -p agent --test integration kustomization_drift::`.

mod support;
mod support_ks;
mod support_sops;

mod agent_gitops;
mod git_artifact;
mod git_fetch;
mod git_push;
mod gitrepository_credentials;
mod kustomization_apply;
mod kustomization_dependencies;
mod kustomization_drift;
mod kustomization_failures;
mod kustomization_health_exprs;
mod kustomization_sops;
mod registry;
