//! The artifact hub: where sources publish artifacts and consumers subscribe to them.
//!
//! A source actor sends [`Publish`] each time it stores a new artifact; every subscriber of
//! that source receives [`ArtifactReady`] at once (no polling between actors). A consumer
//! that subscribes gets the latest artifact immediately if there is one, so the order in
//! which a source and its consumers start does not matter, and a restarted actor on either
//! side resubscribes or republishes without losing anything.

use std::collections::HashMap;
use std::path::PathBuf;

use actix::prelude::*;

/// A source object: `GitRepository`, `OCIRepository`, `Bucket`, `ExternalArtifact`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// A source's newest artifact, as consumers receive it.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct ArtifactReady {
    pub source: SourceRef,
    /// What goes into the source's `status.artifact` (revision, digest, url, ...).
    pub artifact: api::meta::Artifact,
    /// The tarball on local disk, readable by consumers inside the agent.
    pub file: PathBuf,
}

/// Sent by a source actor when it has stored a new artifact.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Publish(pub ArtifactReady);

/// Sent by a source actor whose object was deleted: its artifact is no longer served.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Withdraw(pub SourceRef);

/// Subscribes to a source; the latest artifact, if any, is sent at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub source: SourceRef,
    pub subscriber: Recipient<ArtifactReady>,
}

/// Stops deliveries of a source to a subscriber.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub source: SourceRef,
    pub subscriber: Recipient<ArtifactReady>,
}

/// The latest artifact of a source, if it has one.
#[derive(Message)]
#[rtype(result = "Option<ArtifactReady>")]
pub struct Latest(pub SourceRef);

#[derive(Default)]
struct Topic {
    latest: Option<ArtifactReady>,
    subscribers: Vec<Recipient<ArtifactReady>>,
}

/// Keeps the latest artifact of every source and the subscribers of each.
#[derive(Default)]
pub struct ArtifactHub {
    topics: HashMap<SourceRef, Topic>,
}

impl Actor for ArtifactHub {
    type Context = Context<Self>;
}

impl Handler<Publish> for ArtifactHub {
    type Result = ();

    fn handle(&mut self, Publish(ready): Publish, _: &mut Context<Self>) {
        let topic = self.topics.entry(ready.source.clone()).or_default();
        if topic.latest.as_ref() == Some(&ready) {
            return;
        }
        // Subscribers that stopped are dropped here; a restarted one subscribes again.
        topic.subscribers.retain(|s| s.connected());
        for subscriber in &topic.subscribers {
            subscriber.do_send(ready.clone());
        }
        topic.latest = Some(ready);
    }
}

impl Handler<Withdraw> for ArtifactHub {
    type Result = ();

    fn handle(&mut self, Withdraw(source): Withdraw, _: &mut Context<Self>) {
        if let Some(topic) = self.topics.get_mut(&source) {
            topic.latest = None;
        }
    }
}

impl Handler<Subscribe> for ArtifactHub {
    type Result = ();

    fn handle(&mut self, message: Subscribe, _: &mut Context<Self>) {
        let topic = self.topics.entry(message.source).or_default();
        if let Some(latest) = &topic.latest {
            message.subscriber.do_send(latest.clone());
        }
        if !topic.subscribers.contains(&message.subscriber) {
            topic.subscribers.push(message.subscriber);
        }
    }
}

impl Handler<Unsubscribe> for ArtifactHub {
    type Result = ();

    fn handle(&mut self, message: Unsubscribe, _: &mut Context<Self>) {
        if let Some(topic) = self.topics.get_mut(&message.source) {
            topic.subscribers.retain(|s| *s != message.subscriber);
        }
    }
}

impl Handler<Latest> for ArtifactHub {
    type Result = Option<ArtifactReady>;

    fn handle(&mut self, Latest(source): Latest, _: &mut Context<Self>) -> Option<ArtifactReady> {
        self.topics.get(&source).and_then(|t| t.latest.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    struct Collector(Arc<Mutex<Vec<String>>>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<ArtifactReady> for Collector {
        type Result = ();

        fn handle(&mut self, ready: ArtifactReady, _: &mut Context<Self>) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(ready.artifact.revision);
            }
        }
    }

    fn source() -> SourceRef {
        SourceRef {
            kind: "GitRepository".into(),
            namespace: "flux-system".into(),
            name: "fleet".into(),
        }
    }

    fn ready(revision: &str) -> ArtifactReady {
        ArtifactReady {
            source: source(),
            artifact: api::meta::Artifact {
                digest: None,
                path: "x.tar.gz".into(),
                url: "http://127.0.0.1/x.tar.gz".into(),
                revision: revision.into(),
                last_update_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                size: None,
                metadata: None,
            },
            file: PathBuf::from("/tmp/x.tar.gz"),
        }
    }

    #[actix::test]
    async fn subscribers_get_the_latest_artifact_at_once_and_each_new_one_after() {
        let hub = ArtifactHub::default().start();
        hub.send(Publish(ready("main@sha1:1")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector(seen.clone()).start();
        hub.send(Subscribe {
            source: source(),
            subscriber: collector.clone().recipient(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        hub.send(Publish(ready("main@sha1:1")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        hub.send(Publish(ready("main@sha1:2")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A round trip to the collector drains its mailbox.
        collector
            .send(ready("probe"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen, ["main@sha1:1", "main@sha1:2", "probe"]);
    }

    #[actix::test]
    async fn unsubscribed_consumers_hear_nothing_more_and_withdrawn_sources_have_no_latest() {
        let hub = ArtifactHub::default().start();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector(seen.clone()).start();
        let subscriber = collector.clone().recipient();
        hub.send(Subscribe {
            source: source(),
            subscriber: subscriber.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        hub.send(Unsubscribe {
            source: source(),
            subscriber,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        hub.send(Publish(ready("main@sha1:3")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        collector
            .send(ready("probe"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen.lock().map(|s| s.clone()).unwrap_or_default(),
            ["probe"]
        );
        hub.send(Withdraw(source()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hub.send(Latest(source())).await.ok().flatten(), None);
    }
}
