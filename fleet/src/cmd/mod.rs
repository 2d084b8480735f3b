//! One module per subcommand; each exposes its clap `Args` and a `run` function.

pub mod act;
pub mod cluster;
pub mod demo;
pub mod fleet;
pub mod get;
pub mod kustomize;
pub mod serve;
pub mod sim;

/// Process-wide set-up shared by every subcommand: the one rustls crypto provider (aws-lc-rs)
/// and logging to stderr, filtered by `RUST_LOG`.
pub fn init_process() {
    // Installing twice (e.g. in tests that call this again) is harmless: the first one stays.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error and its causes on one line, as `{:#}` prints them but without a cause whose text
/// its parent already includes (errors that show their source in their own message).
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on 127.0.0.1:9444: {source}")]
    struct Bind {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_parents_text_is_not_repeated() {
        let bind = Bind {
            source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use"),
        };
        let error = anyhow::Error::new(bind).context("starting the fleet");
        assert_eq!(
            describe(&error),
            "starting the fleet: cannot listen on 127.0.0.1:9444: address in use"
        );
    }
}
