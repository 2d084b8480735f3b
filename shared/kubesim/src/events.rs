//! `events.k8s.io/v1` Events are another representation of core `v1` Events: kube-apiserver
//! stores both in one place and converts field names. kubesim stores the core form.

use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field).
const FIELDS: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(obj: &Value, to_new: bool) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = FIELDS.iter().find_map(|(core, new)| match to_new {
            true if k == core => Some(*new),
            false if k == new => Some(*core),
            _ => None,
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    Value::Object(out)
}

/// The events.k8s.io/v1 form of a stored core Event.
pub fn to_events_v1(core: &Value) -> Value {
    rename(core, true)
}

/// The stored core form of an events.k8s.io/v1 Event.
pub fn to_core(ev: &Value) -> Value {
    let mut v = rename(ev, false);
    v["apiVersion"] = Value::String("v1".into());
    v["kind"] = Value::String("Event".into());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_event_apis_round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"kind": "Pod"}, "note": "hi", "reason": "Started"});
        let core = to_core(&new);
        assert_eq!(core["involvedObject"]["kind"], "Pod");
        assert_eq!(core["message"], "hi");
        assert_eq!(to_events_v1(&core)["note"], "hi");
    }
}
