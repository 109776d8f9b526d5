//! Config requests from the HTTP API: reads at the caller's consistency through the
//! consensus service, writes proposed here or — on a follower — forwarded to the leader, each
//! answered once this node has applied it; and the leader's side of a forwarded write.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::warn;

use crate::cluster::command::MAX_VALUE_BYTES;
use crate::cluster::{
    Command as ClusterCommand, ConfigKey, ConfigOutcome, ConfigStore, RequestId, TrainingMessage,
    WireLimits,
};
use crate::codec::{Decode, Encode};
use crate::events::EventKind;
use crate::net::{Message, NetError, Network, NodeId, Responder};
use crate::views::{ConfigFailure, ConfigRequest, ConfigWritten};

use super::super::consensus::{ConsensusError, ConsensusHandle};
use super::super::replicated::Replicated;
use super::{Service, to_frame};

/// How long a config write waits for its entry to apply here.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);

/// The config writes proposed here that wait for their entry to apply, by request id.
#[derive(Debug, Default)]
pub(super) struct ConfigWriters {
    pub(super) waiters: HashMap<RequestId, oneshot::Sender<ConfigOutcome>>,
}

impl Service {
    /// A follower forwarded a client's config write: propose it here. Only config commands
    /// are accepted from peers (rounds come from this node's own coordinator).
    pub(super) fn on_forward(&mut self, peer: NodeId, command: Vec<u8>, reply: Responder) {
        let answer = |result: Result<u64, String>| {
            vec![to_frame(&TrainingMessage::ForwardResult { result })]
        };
        match ClusterCommand::from_bytes(&command) {
            Ok(
                ClusterCommand::ConfigPut { .. }
                | ClusterCommand::ConfigCas { .. }
                | ClusterCommand::ModelRegistered(_),
            ) => {}
            Ok(_) => {
                warn!(peer = %peer.short(), "forwarded command that is not a config write refused");
                let _ = reply.send(answer(Err(
                    "only config writes and round 0 are forwarded".into()
                )));
                return;
            }
            Err(error) => {
                let _ = reply.send(answer(Err(format!("undecodable command: {error}"))));
                return;
            }
        }
        let consensus = self.consensus.clone();
        self.tasks.spawn(async move {
            let result = consensus.propose(command).await.map_err(|e| e.to_string());
            let _ = reply.send(answer(result));
        });
    }

    pub(super) fn on_config(&mut self, request: ConfigRequest) {
        match request {
            ConfigRequest::Get { key, mode, reply } => {
                if let Err(error) = ConfigKey::parse(&key) {
                    let _ = reply.send(Err(ConfigFailure::BadRequest(error.to_string())));
                    return;
                }
                self.event_log
                    .record(EventKind::ConfigRead { key: key.clone() });
                let consensus = self.consensus.clone();
                self.tasks.spawn(async move {
                    let read = consensus
                        .read(mode, move |machine| machine.state().config().get(&key))
                        .await;
                    let answer = match read {
                        Ok(Ok(value)) => Ok(value),
                        Ok(Err(error)) => Err(ConfigFailure::BadRequest(error.to_string())),
                        Err(error) => Err(ConfigFailure::Unavailable(error.to_string())),
                    };
                    let _ = reply.send(answer);
                });
            }
            ConfigRequest::Put {
                key,
                value,
                expected,
                reply,
            } => {
                if let Err(error) = ConfigStore::default().validate(&key, &value) {
                    let _ = reply.send(Err(ConfigFailure::BadRequest(error.to_string())));
                    return;
                }
                // No stored value is longer, and a longer one would commit an entry no node
                // can decode.
                if let Some(Some(expected)) = &expected
                    && expected.len() > MAX_VALUE_BYTES
                {
                    let reason = format!("expect= is at most {MAX_VALUE_BYTES} bytes");
                    let _ = reply.send(Err(ConfigFailure::BadRequest(reason)));
                    return;
                }
                let request = RequestId {
                    client: rand::random(),
                    seq: 1,
                };
                let command = match expected {
                    None => ClusterCommand::ConfigPut {
                        request,
                        key: key.clone(),
                        value: value.clone(),
                    },
                    Some(expected) => ClusterCommand::ConfigCas {
                        request,
                        key: key.clone(),
                        expected,
                        value: value.clone(),
                    },
                };
                self.event_log
                    .record(EventKind::ConfigWrite { key: key.clone() });
                let (waiter, outcome) = oneshot::channel();
                self.config_writes.waiters.insert(request, waiter);
                let consensus = self.consensus.clone();
                let net = self.net.clone();
                self.tasks.spawn(async move {
                    let answer = write_config(consensus, net, command, outcome).await;
                    let _ = reply.send(answer.map(|index| ConfigWritten { key, value, index }));
                });
            }
        }
    }
}

/// Proposes a config write here or, on a follower, at the leader; then waits until this node
/// applied it and answers with its outcome.
async fn write_config(
    consensus: ConsensusHandle<Replicated>,
    net: Network,
    command: ClusterCommand,
    outcome: oneshot::Receiver<ConfigOutcome>,
) -> Result<u64, ConfigFailure> {
    let bytes = command.to_bytes();
    let index = match consensus.propose(bytes.clone()).await {
        Ok(index) => index,
        Err(ConsensusError::NotLeader {
            leader: Some(leader),
        }) => forward(&net, leader, bytes).await?,
        Err(error @ (ConsensusError::NotLeader { .. } | ConsensusError::Dropped { .. })) => {
            return Err(ConfigFailure::Unavailable(error.to_string()));
        }
        Err(error) => return Err(ConfigFailure::Unknown(error.to_string())),
    };
    match tokio::time::timeout(CONFIG_TIMEOUT, outcome).await {
        Ok(Ok(ConfigOutcome::Written)) => Ok(index),
        Ok(Ok(ConfigOutcome::CasFailed { current })) => Err(ConfigFailure::CasFailed { current }),
        Ok(Ok(ConfigOutcome::Refused { reason })) => Err(ConfigFailure::BadRequest(reason)),
        Ok(Ok(ConfigOutcome::Superseded)) => Err(ConfigFailure::Unavailable(
            "a newer request of the same client was applied first".into(),
        )),
        Ok(Err(_)) | Err(_) => Err(ConfigFailure::Unknown(format!(
            "committed at index {index} but not applied here within {CONFIG_TIMEOUT:?}"
        ))),
    }
}

/// Sends a config write to the leader and returns the log index it committed at. Not
/// connected to the leader: not done; anything after the request left: unknown.
pub(super) async fn forward(
    net: &Network,
    leader: NodeId,
    command: Vec<u8>,
) -> Result<u64, ConfigFailure> {
    let unknown = |reason: String| ConfigFailure::Unknown(reason);
    let request = to_frame(&TrainingMessage::Forward { command });
    let answer = net.request(leader, request).await.map_err(|e| match e {
        NetError::NotConnected(_) => {
            ConfigFailure::Unavailable(format!("cannot reach the leader: {e}"))
        }
        e => unknown(format!("the forwarded write got no answer: {e}")),
    })?;
    for message in answer {
        let Message::Service(frame) = message else {
            continue;
        };
        if let Ok(TrainingMessage::ForwardResult { result }) =
            TrainingMessage::decode(frame.code, &frame.payload, &WireLimits::for_params(0))
        {
            return result.map_err(|e| unknown(format!("the leader: {e}")));
        }
    }
    Err(unknown(
        "the leader did not answer the forwarded write".into(),
    ))
}
