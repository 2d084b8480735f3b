//! The fleet's Prometheus metrics: fixed families, registered once per server.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::state::FleetState;

/// The metric families of one fleet server.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    registry: Registry,
    clusters: IntGaugeVec,
    connected_agents: IntGauge,
    messages: IntCounterVec,
    rejected: IntCounterVec,
    commands: IntCounterVec,
    propagation: Histogram,
}

impl FleetMetrics {
    /// Registers the families.
    pub fn new() -> Result<FleetMetrics, prometheus::Error> {
        let registry = Registry::new();
        let clusters = IntGaugeVec::new(
            Opts::new(
                "flotilla_fleet_clusters",
                "Registered clusters by connection state",
            ),
            &["state"],
        )?;
        let connected_agents = IntGauge::new(
            "flotilla_fleet_connected_agents",
            "Agents with an open session",
        )?;
        let messages = IntCounterVec::new(
            Opts::new(
                "flotilla_fleet_messages_total",
                "Protocol messages received from agents, by type",
            ),
            &["type"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "flotilla_fleet_rejected_connections_total",
                "Agent connections closed for a protocol violation, by reason",
            ),
            &["reason"],
        )?;
        let commands = IntCounterVec::new(
            Opts::new(
                "flotilla_fleet_commands_total",
                "Commands relayed to agents, by action and outcome",
            ),
            &["action", "outcome"],
        )?;
        let propagation = Histogram::with_opts(
            HistogramOpts::new(
                "flotilla_fleet_status_propagation_seconds",
                "From an agent sending a status delta to the fleet's API serving it",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        registry.register(Box::new(clusters.clone()))?;
        registry.register(Box::new(connected_agents.clone()))?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(propagation.clone()))?;
        Ok(FleetMetrics {
            registry,
            clusters,
            connected_agents,
            messages,
            rejected,
            commands,
            propagation,
        })
    }

    /// A message of type `kind` arrived.
    pub fn message(&self, kind: &str) {
        self.messages.with_label_values(&[kind]).inc();
    }

    /// A connection was closed for `reason`.
    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    /// A command was relayed.
    pub fn command(&self, action: &str, outcome: &str) {
        self.commands.with_label_values(&[action, outcome]).inc();
    }

    /// A status sent at `sent_at_ms` is now served.
    pub fn propagated(&self, sent_at_ms: i64) {
        let seconds = (proto::message::now_ms() - sent_at_ms).max(0) as f64 / 1000.0;
        self.propagation.observe(seconds);
    }

    /// Sessions opened and closed.
    pub fn session_opened(&self) {
        self.connected_agents.inc();
    }

    /// See [`FleetMetrics::session_opened`].
    pub fn session_closed(&self) {
        self.connected_agents.dec();
    }

    /// The text exposition, with the per-state gauges taken from `state` now.
    pub fn render(&self, state: &FleetState) -> String {
        for (s, n) in state.count_by_state() {
            self.clusters.with_label_values(&[s]).set(n as i64);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format's own families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
