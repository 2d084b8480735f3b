//! The lifecycle of one source as a pure state machine: no I/O, no clock, no randomness.
//!
//! The actor feeds [`Event`]s to [`step`] and carries out the returned [`Effect`]s. Jitter
//! comes from a caller-supplied seed so runs are reproducible in tests.

use std::time::Duration;

/// Timing policy of one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// `spec.interval`: time between successful fetches.
    pub interval: Duration,
    /// Fraction of the interval added or removed at random (Flux's interval jitter), 0..=1.
    pub jitter: f64,
    /// First retry delay after a failure.
    pub backoff_base: Duration,
    /// Longest retry delay; retries never wait longer than the interval either.
    pub backoff_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            interval: Duration::from_secs(60),
            jitter: 0.05,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// Where a source is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Created, nothing fetched yet; entered at start and when the spec changes.
    Idle,
    /// A fetch is running; entered on a timer, a reconcile request or a spec change.
    Fetching {
        /// Consecutive failures before this fetch.
        failures: u32,
        /// The last good revision, still served while fetching.
        last: Option<String>,
        /// The spec changed or a reconcile was requested during this fetch: fetch again
        /// as soon as it ends, since its result may predate the request.
        again: bool,
    },
    /// The last fetch succeeded; the next one is scheduled.
    Ready {
        /// The revision of the current artifact.
        revision: String,
    },
    /// The last fetch failed with a retryable error; a retry is scheduled.
    Backoff {
        /// Consecutive failures so far.
        failures: u32,
        /// The last good revision, still served.
        last: Option<String>,
    },
    /// A terminal error (bad URL, bad ref): nothing is retried until the spec changes.
    Stalled {
        /// The last good revision, still served.
        last: Option<String>,
    },
    /// `spec.suspend` is true: nothing runs until resumed.
    Suspended {
        /// The last good revision, still served.
        last: Option<String>,
    },
}

/// Something that happened to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The actor started, or the spec changed (new generation).
    SpecChanged,
    /// The scheduled timer fired.
    TimerFired,
    /// `reconcile.fluxcd.io/requestedAt` changed: fetch now.
    ReconcileRequested,
    /// The fetch succeeded with this revision.
    Fetched {
        /// The resolved revision.
        revision: String,
    },
    /// The fetch failed.
    Failed {
        /// True for errors retrying cannot fix.
        terminal: bool,
    },
    /// `spec.suspend` became true.
    Suspend,
    /// `spec.suspend` became false.
    Resume,
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a fetch (off the actor thread).
    Fetch,
    /// Deliver [`Event::TimerFired`] after this delay, replacing any pending timer.
    Schedule(Duration),
    /// Cancel the pending timer.
    CancelTimer,
    /// A new revision is available: tell subscribers.
    Publish {
        /// The new revision.
        revision: String,
    },
}

/// Advances the state machine. `seed` varies the jitter (e.g. a counter or a hash of the
/// object's UID mixed with the generation).
pub fn step(state: State, event: Event, policy: &Policy, seed: u64) -> (State, Vec<Effect>) {
    use Effect::*;
    let fetch = |failures, last| {
        (
            State::Fetching {
                failures,
                last,
                again: false,
            },
            vec![Fetch],
        )
    };
    match (state, event) {
        (State::Suspended { last }, Event::Resume) => fetch(0, last),
        (s @ State::Suspended { .. }, _) => (s, vec![]),
        (s, Event::Suspend) => (
            State::Suspended {
                last: last_revision(&s),
            },
            vec![CancelTimer],
        ),

        (State::Fetching { last, again, .. }, Event::Fetched { revision }) => {
            let mut effects = Vec::new();
            if last.as_deref() != Some(revision.as_str()) {
                effects.push(Publish {
                    revision: revision.clone(),
                });
            }
            if again {
                effects.push(Fetch);
                return (
                    State::Fetching {
                        failures: 0,
                        last: Some(revision),
                        again: false,
                    },
                    effects,
                );
            }
            effects.push(Schedule(jittered(policy.interval, policy.jitter, seed)));
            (State::Ready { revision }, effects)
        }
        (
            State::Fetching {
                last, again: true, ..
            },
            Event::Failed { .. },
        ) => fetch(0, last),
        (State::Fetching { last, .. }, Event::Failed { terminal: true }) => {
            (State::Stalled { last }, vec![CancelTimer])
        }
        (State::Fetching { failures, last, .. }, Event::Failed { terminal: false }) => {
            let failures = failures.saturating_add(1);
            (
                State::Backoff { failures, last },
                vec![Schedule(backoff(policy, failures, seed))],
            )
        }
        (
            State::Fetching { failures, last, .. },
            Event::SpecChanged | Event::ReconcileRequested,
        ) => (
            State::Fetching {
                failures,
                last,
                again: true,
            },
            vec![],
        ),
        (s @ State::Fetching { .. }, _) => (s, vec![]),

        (s, Event::SpecChanged) => fetch(0, last_revision(&s)),
        (State::Stalled { last }, Event::ReconcileRequested) => fetch(0, last),
        (s @ State::Stalled { .. }, _) => (s, vec![]),
        (State::Backoff { failures, last }, Event::TimerFired | Event::ReconcileRequested) => {
            fetch(failures, last)
        }
        (State::Ready { revision }, Event::TimerFired | Event::ReconcileRequested) => {
            fetch(0, Some(revision))
        }
        (State::Idle, Event::TimerFired | Event::ReconcileRequested) => fetch(0, None),
        // Results without a fetch in flight, or Resume when not suspended: nothing to do.
        (s, _) => (s, vec![]),
    }
}

fn last_revision(state: &State) -> Option<String> {
    match state {
        State::Idle => None,
        State::Ready { revision } => Some(revision.clone()),
        State::Fetching { last, .. }
        | State::Backoff { last, .. }
        | State::Stalled { last }
        | State::Suspended { last } => last.clone(),
    }
}

/// Exponential backoff `base * 2^(failures-1)`, capped by `backoff_max` and the interval,
/// with up to 10% jitter so that many failing sources do not retry in lockstep.
pub fn backoff(policy: &Policy, failures: u32, seed: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let raw = policy.backoff_base.saturating_mul(1u32 << exp.min(31));
    let cap = policy
        .backoff_max
        .min(policy.interval.max(policy.backoff_base));
    jittered(raw.min(cap), 0.1, seed).min(cap)
}

/// `base` moved by up to `fraction` of itself in either direction, chosen by `seed`.
pub fn jittered(base: Duration, fraction: f64, seed: u64) -> Duration {
    let fraction = fraction.clamp(0.0, 1.0);
    // splitmix64: a well-mixed value from any seed, so nearby seeds spread evenly.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let factor = 1.0 + fraction * (2.0 * unit - 1.0);
    base.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            interval: Duration::from_secs(60),
            jitter: 0.1,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }

    fn run(events: &[Event]) -> (State, Vec<Vec<Effect>>) {
        let mut state = State::Idle;
        let mut all = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let (next, effects) = step(state, event.clone(), &policy(), i as u64);
            state = next;
            all.push(effects);
        }
        (state, all)
    }

    #[test]
    fn a_new_revision_is_published_once_and_the_next_fetch_is_scheduled() {
        let rev = || Event::Fetched {
            revision: "main@sha1:a".into(),
        };
        let (state, effects) = run(&[Event::SpecChanged, rev(), Event::TimerFired, rev()]);
        assert_eq!(
            state,
            State::Ready {
                revision: "main@sha1:a".into()
            }
        );
        assert!(effects[1].contains(&Effect::Publish {
            revision: "main@sha1:a".into()
        }));
        assert!(
            !effects[3]
                .iter()
                .any(|e| matches!(e, Effect::Publish { .. })),
            "same revision is not republished"
        );
        assert!(matches!(effects[3].last(), Some(Effect::Schedule(_))));
    }

    #[test]
    fn retryable_failures_back_off_exponentially_up_to_the_cap() {
        let p = policy();
        let delays: Vec<Duration> = (1..=8).map(|n| backoff(&p, n, 7)).collect();
        for pair in delays.windows(2).take(4) {
            assert!(pair[1] > pair[0], "{delays:?}");
        }
        assert!(delays.iter().all(|d| *d <= p.backoff_max), "{delays:?}");
        assert!(delays[7] >= p.backoff_max.mul_f64(0.9), "{delays:?}");
    }

    #[test]
    fn failures_keep_the_last_good_revision_and_retry_on_the_timer() {
        let (state, effects) = run(&[
            Event::SpecChanged,
            Event::Fetched {
                revision: "r1".into(),
            },
            Event::TimerFired,
            Event::Failed { terminal: false },
            Event::TimerFired,
        ]);
        assert_eq!(
            state,
            State::Fetching {
                failures: 1,
                last: Some("r1".into()),
                again: false
            }
        );
        assert!(matches!(effects[3].as_slice(), [Effect::Schedule(_)]));
        assert_eq!(effects[4], vec![Effect::Fetch]);
    }

    #[test]
    fn terminal_errors_stall_until_the_spec_changes() {
        let (state, effects) = run(&[
            Event::SpecChanged,
            Event::Failed { terminal: true },
            Event::TimerFired,
            Event::SpecChanged,
        ]);
        assert_eq!(effects[2], vec![]);
        assert_eq!(
            state,
            State::Fetching {
                failures: 0,
                last: None,
                again: false
            }
        );
    }

    #[test]
    fn suspended_sources_ignore_everything_but_resume() {
        let (state, effects) = run(&[
            Event::SpecChanged,
            Event::Fetched {
                revision: "r1".into(),
            },
            Event::Suspend,
            Event::TimerFired,
            Event::ReconcileRequested,
            Event::Resume,
        ]);
        assert_eq!(effects[2], vec![Effect::CancelTimer]);
        assert!(effects[3].is_empty() && effects[4].is_empty());
        assert_eq!(
            state,
            State::Fetching {
                failures: 0,
                last: Some("r1".into()),
                again: false
            }
        );
    }

    #[test]
    fn a_reconcile_request_fetches_at_once_when_ready() {
        let (_, effects) = run(&[
            Event::SpecChanged,
            Event::Fetched {
                revision: "r".into(),
            },
            Event::ReconcileRequested,
        ]);
        assert_eq!(effects[2], vec![Effect::Fetch]);
    }

    #[test]
    fn jitter_stays_within_the_fraction_and_varies_with_the_seed() {
        let base = Duration::from_secs(100);
        let values: Vec<Duration> = (0..200).map(|s| jittered(base, 0.05, s)).collect();
        assert!(
            values
                .iter()
                .all(|d| *d >= Duration::from_secs(95) && *d <= Duration::from_secs(105))
        );
        assert!(values.iter().any(|d| *d < base) && values.iter().any(|d| *d > base));
        assert_eq!(jittered(base, 0.0, 42), base);
    }

    #[test]
    fn a_spec_change_during_a_fetch_triggers_another_fetch_when_it_ends() {
        let (state, effects) = run(&[
            Event::SpecChanged,
            Event::SpecChanged,
            Event::Fetched {
                revision: "r1".into(),
            },
            Event::Fetched {
                revision: "r2".into(),
            },
        ]);
        assert_eq!(effects[1], vec![], "no second fetch in parallel");
        assert_eq!(
            effects[2],
            vec![
                Effect::Publish {
                    revision: "r1".into()
                },
                Effect::Fetch
            ]
        );
        assert_eq!(
            state,
            State::Ready {
                revision: "r2".into()
            }
        );
    }
}
