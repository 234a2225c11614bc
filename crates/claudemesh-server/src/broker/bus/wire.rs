//! What travels on the bus, whichever carries it: the events, how they are
//! stamped and read, and the bus's errors (shared by `postgres` and
//! `nats`, which `mod.rs` chooses between).

use crate::metrics::METRICS;
use claudemesh_api::broker::Peer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusEvent {
    /// Messages stored in this mesh, with deliveries waiting.
    Messages {
        mesh_id: String,
        ids: Vec<String>,
    },
    Joined {
        mesh_id: String,
        peer: Peer,
    },
    Left {
        mesh_id: String,
        session_key: String,
    },
    Updated {
        mesh_id: String,
        peer: Peer,
    },
    /// A membership ended: its sessions are closed everywhere.
    Removed {
        mesh_id: String,
        member_id: String,
    },
    /// The mesh was archived or deleted: its sessions close everywhere.
    Closed {
        mesh_id: String,
        deleted: bool,
    },
    /// What `member_id` allows `peer_member_id` changed (bits of
    /// `meshes::grant_store::Caps`).
    Grant {
        mesh_id: String,
        member_id: String,
        peer_member_id: String,
        caps: u8,
    },
    /// `conn_id` now holds this session; any other connection of it closes.
    Kick {
        session_key: String,
        conn_id: String,
    },
}

impl BusEvent {
    /// The events announcing stored messages: per mesh, their ids, at most
    /// 100 an event (a NOTIFY payload stays far below its 8,000 bytes).
    pub fn for_messages<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Self> {
        let mut by_mesh: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (mesh_id, id) in messages {
            by_mesh.entry(mesh_id).or_default().push(id.to_owned());
        }
        by_mesh
            .into_iter()
            .flat_map(|(mesh_id, ids)| {
                ids.chunks(100)
                    .map(|ids| BusEvent::Messages {
                        mesh_id: mesh_id.to_owned(),
                        ids: ids.to_vec(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// An event with the instance it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Note {
    /// The sending instance (which has already applied the event itself).
    i: String,
    /// When it was written (wall-clock ms), for the bus lag metric; absent
    /// from older instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    #[serde(flatten)]
    event: BusEvent,
}

/// An event as it travels, stamped with its instance and time.
pub(super) fn encode(instance_id: &str, event: &BusEvent) -> String {
    serde_json::to_string(&Note {
        i: instance_id.to_owned(),
        at: Some(crate::metrics::wall_ms()),
        event: event.clone(),
    })
    .unwrap_or_default()
}

/// The event in a payload from another instance; `None` for this
/// instance's own (already applied) and for what cannot be read.
pub(super) fn decode(payload: &[u8], instance_id: &str) -> Option<BusEvent> {
    match serde_json::from_slice::<Note>(payload) {
        Ok(note) if note.i != instance_id => {
            METRICS
                .broker_bus_events
                .with_label_values(&["received"])
                .inc();
            // Instances' clocks may disagree: a stamp from the future is
            // not a lag.
            if let Some(lag) = note.at.and_then(crate::metrics::seconds_since) {
                METRICS.broker_bus_lag.observe(lag);
            }
            Some(note.event)
        }
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(error = %err, "broker: unreadable bus event");
            None
        }
    }
}

pub(super) fn count_sent(events: usize) {
    METRICS
        .broker_bus_events
        .with_label_values(&["sent"])
        .inc_by(events as u64);
}

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("--bus (CLAUDEMESH_BUS): {0}")]
    Setting(String),
    #[error("--bus (CLAUDEMESH_BUS): cannot connect to NATS at {server}: {source}")]
    Connect {
        server: String,
        source: async_nats::ConnectError,
    },
}

/// A bus URL with any password replaced, for messages.
pub(super) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://…@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_messages_are_announced_per_mesh_a_hundred_ids_at_most() {
        let ids: Vec<String> = (0..150).map(|i| format!("msg_{i}")).collect();
        let messages = ids
            .iter()
            .map(|id| ("mesh_b", id.as_str()))
            .chain([("mesh_a", "msg_x")]);
        let events = BusEvent::for_messages(messages);
        let shape: Vec<(String, usize)> = events
            .iter()
            .map(|e| match e {
                BusEvent::Messages { mesh_id, ids } => (mesh_id.clone(), ids.len()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("mesh_a".into(), 1),
                ("mesh_b".into(), 100),
                ("mesh_b".into(), 50)
            ]
        );
    }

    #[test]
    fn an_instance_ignores_its_own_events_and_unreadable_ones() {
        let event = BusEvent::Left {
            mesh_id: "m".into(),
            session_key: "k".into(),
        };
        let payload = encode("ins_a", &event);
        assert!(decode(payload.as_bytes(), "ins_a").is_none());
        assert!(matches!(
            decode(payload.as_bytes(), "ins_b"),
            Some(BusEvent::Left { session_key, .. }) if session_key == "k"
        ));
        assert!(decode(b"{not json", "ins_b").is_none());
    }
}
