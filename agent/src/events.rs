//! Kubernetes Events on Flux objects, as Flux's controllers record them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

/// `Normal` or `Warning`, as core/v1 Events spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record on an object.
#[derive(Debug, Clone)]
pub struct Occurrence<'a> {
    pub type_: EventType,
    /// Flux's reason, e.g. `NewArtifact`, `ReconciliationSucceeded`, `HealthCheckFailed`.
    pub reason: &'a str,
    pub message: &'a str,
    /// The Flux controller the event is attributed to (`source-controller`, ...), so that
    /// `flux events` and notification filters see what they expect.
    pub component: &'a str,
    /// Annotations such as `<group>/revision`, as Flux adds them.
    pub annotations: BTreeMap<String, String>,
}

/// Records an event on `object`. Failing to record one is logged and otherwise ignored:
/// events are for people, and a reconcile must not fail because of one.
pub async fn record<K>(client: &Client, object: &K, occurrence: Occurrence<'_>)
where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_else(|| "default".to_string());
    let name = object.name_any();
    let stamp = Time(k8s_openapi::jiff::Timestamp::now());
    let nanos = stamp.0.as_nanosecond();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{nanos:x}")),
            namespace: Some(namespace.clone()),
            annotations: (!occurrence.annotations.is_empty()).then_some(occurrence.annotations),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name.clone()),
            namespace: object.namespace(),
            uid: object.uid(),
            resource_version: object.resource_version(),
            ..ObjectReference::default()
        },
        reason: Some(occurrence.reason.to_string()),
        message: Some(occurrence.message.to_string()),
        type_: Some(occurrence.type_.as_str().to_string()),
        source: Some(EventSource {
            component: Some(occurrence.component.to_string()),
            host: None,
        }),
        reporting_component: Some("flotilla-agent".into()),
        first_timestamp: Some(stamp.clone()),
        last_timestamp: Some(stamp),
        count: Some(1),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(%namespace, %name, %error, "recording an event failed");
    }
}
