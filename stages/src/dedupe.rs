//! `dedupe`: drops every copy of a Meta update after the first.
//!
//! Meta retries a webhook that did not get a 200 "with decreasing frequency … for up to 7 days",
//! to every app subscribed to the WABA (WIRE.md §1.9), so the same message or status can reach us
//! many times. The idempotency key is the wamid for a message and `(wamid, status)` for a status
//! (a `delivered` and a `read` of one message are different facts). Value-level errors and other
//! changes have no identity and pass through.
//!
//! The claim's owner is the input record's origin: after a crash, the *same record* redelivered by
//! Kafka resumes its claim and is emitted again if it had not been completed, while another record
//! carrying the same key is a duplicate. A claim is completed once the output is acked, which
//! makes a later redelivery of finished work a "replayed" discard instead of a second emission.
//!
//! Records read together are claimed together and completed together: one Redis round trip each
//! for the whole group ([`StateStore::claim_all`]), the same claims one after another would make.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use wabaflow_pipeline::{Context, Outcome, Processed, Stage, StageError};
use wabaflow_schemas::IdempotencyKey;
use wabaflow_schemas::topics::{
    GENESYS_OUTBOUND, GENESYS_OUTBOUND_UNIQUE, Topic, WA_INBOUND, WA_INBOUND_UNIQUE,
};

use crate::map::Direction;
use wabaflow_store::{Claim, StateStore, StoreError};

pub struct DedupeStage {
    store: Arc<dyn StateStore>,
    ttl: Duration,
    direction: Direction,
}

impl DedupeStage {
    /// Meta's webhooks: `wa.inbound.v1` → `wa.inbound.unique.v1`.
    pub fn new(store: Arc<dyn StateStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            direction: Direction::Inbound,
        }
    }

    /// Genesys' outbound webhooks (retried up to 5 times, duplicated by Genesys at times), keyed
    /// on the Genesys message id: `genesys.outbound.v1` → `genesys.outbound.unique.v1`.
    pub fn outbound(store: Arc<dyn StateStore>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            direction: Direction::Outbound,
        }
    }
}

/// The claim to complete once the output is durable: its key and owner (the record's origin,
/// formatted once).
pub struct ClaimReceipt(Option<(String, String)>);

fn unavailable(err: StoreError) -> StageError {
    StageError::Unavailable(err.to_string())
}

/// The claim `(key, owner)` to make for an event, if it has an identity.
fn claim_of(event: IdempotencyKey, cx: &Context) -> Option<(String, String)> {
    event
        .0
        .map(|key| (["dedupe:", key.as_str()].concat(), cx.origin.text()))
}

/// What the claim found decides: the first copy goes on, the others stop here.
fn decide(found: Claim, claim: (String, String)) -> Outcome<ClaimReceipt> {
    match found {
        Claim::New | Claim::Resumed => Outcome::Forward(ClaimReceipt(Some(claim))),
        Claim::Completed => Outcome::Discard("replayed"),
        Claim::Taken => Outcome::Discard("duplicate"),
    }
}

impl DedupeStage {
    /// Claims the keys of a group's events in one round trip.
    async fn claim_all(
        &self,
        events: Vec<(IdempotencyKey, Context)>,
    ) -> Vec<Processed<ClaimReceipt>> {
        let mut answered = Vec::with_capacity(events.len());
        let mut claimed = Vec::with_capacity(events.len());
        let mut claims = Vec::with_capacity(events.len());
        for (index, (event, cx)) in events.into_iter().enumerate() {
            match claim_of(event, &cx) {
                Some(claim) => {
                    claimed.push(index);
                    claims.push(claim);
                }
                None => answered.push((index, Ok(Outcome::Forward(ClaimReceipt(None))))),
            }
        }
        match self.store.claim_all(&claims, self.ttl).await {
            Ok(found) => answered.extend(
                claimed
                    .into_iter()
                    .zip(claims.into_iter().zip(found))
                    .map(|(index, (claim, found))| (index, Ok(decide(found, claim)))),
            ),
            Err(err) => {
                let reason = err.to_string();
                answered.extend(
                    claimed
                        .into_iter()
                        .map(|index| (index, Err(StageError::Unavailable(reason.clone())))),
                );
            }
        }
        answered
    }
}

#[async_trait]
impl Stage for DedupeStage {
    /// Only the key is read: the record is forwarded byte for byte.
    type Input = IdempotencyKey;
    type Receipt = ClaimReceipt;

    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Inbound => "dedupe",
            Direction::Outbound => "dedupe-outbound",
        }
    }

    fn input(&self) -> Topic {
        match self.direction {
            Direction::Inbound => WA_INBOUND,
            Direction::Outbound => GENESYS_OUTBOUND,
        }
    }

    fn output(&self) -> Option<Topic> {
        Some(match self.direction {
            Direction::Inbound => WA_INBOUND_UNIQUE,
            Direction::Outbound => GENESYS_OUTBOUND_UNIQUE,
        })
    }

    async fn process(
        &self,
        event: IdempotencyKey,
        cx: &Context,
    ) -> Result<Outcome<ClaimReceipt>, StageError> {
        let Some((key, owner)) = claim_of(event, cx) else {
            return Ok(Outcome::Forward(ClaimReceipt(None)));
        };
        let found = self
            .store
            .claim(&key, &owner, self.ttl)
            .await
            .map_err(unavailable)?;
        Ok(decide(found, (key, owner)))
    }

    async fn acked(&self, receipt: ClaimReceipt, _cx: &Context) -> Result<(), StageError> {
        match receipt.0 {
            Some((key, owner)) => self.store.complete(&key, &owner).await.map_err(unavailable),
            None => Ok(()),
        }
    }

    fn process_all<'a>(
        &'a self,
        events: Vec<(IdempotencyKey, Context)>,
    ) -> BoxStream<'a, Processed<ClaimReceipt>> {
        stream::once(self.claim_all(events))
            .flat_map(stream::iter)
            .boxed()
    }

    async fn acked_all(&self, receipts: Vec<(ClaimReceipt, Context)>) -> Result<(), StageError> {
        let claims: Vec<(String, String)> = receipts
            .into_iter()
            .filter_map(|(receipt, _)| receipt.0)
            .collect();
        self.store.complete_all(&claims).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use futures::StreamExt;
    use wabaflow_pipeline::Origin;
    use wabaflow_schemas::{ConversationKey, Envelope, Event, Source};
    use wabaflow_store::MemoryStore;

    use super::*;

    fn in_conversation(event: Event) -> Envelope {
        let key = ConversationKey::conversation("110", "447700900001");
        Envelope::new(Source::Meta, key, None, Utc::now(), None, event)
    }

    fn message(wamid: &str) -> Envelope {
        let message = serde_json::from_value(serde_json::json!({
            "from": "447700900001", "id": wamid, "timestamp": "1767225600", "type": "text", "text": {"body": "hi"}
        }))
        .expect("message");
        let event = Event::MetaMessage {
            phone_number_id: "110".into(),
            display_phone_number: None,
            contact: None,
            message: Box::new(message),
            media: None,
        };
        in_conversation(event)
    }

    fn status(wamid: &str, state: &str) -> Envelope {
        let status = serde_json::from_value(serde_json::json!({
            "id": wamid, "status": state, "timestamp": "1767225600", "recipient_id": "447700900001"
        }))
        .expect("status");
        let event = Event::MetaStatus {
            phone_number_id: "110".into(),
            contact: None,
            status: Box::new(status),
        };
        in_conversation(event)
    }

    /// A value-level error: an event without an identity.
    fn value_error() -> Envelope {
        let error =
            serde_json::from_value(serde_json::json!({"code": 130429, "title": "Rate limit hit"}))
                .expect("error");
        Envelope::new(
            Source::Meta,
            ConversationKey::number("110"),
            None,
            Utc::now(),
            None,
            Event::MetaError {
                phone_number_id: "110".into(),
                error,
            },
        )
    }

    fn at(offset: i64) -> Context {
        Context {
            origin: Origin {
                topic: "wa.inbound.v1".into(),
                partition: 3,
                offset,
            },
        }
    }

    fn stage() -> DedupeStage {
        DedupeStage::new(Arc::new(MemoryStore::new()), Duration::from_secs(3600))
    }

    /// As the runner reads an envelope for this stage: its key, from the record's bytes.
    fn key_of(event: &Envelope) -> IdempotencyKey {
        IdempotencyKey::from_json(&event.to_json()).expect("an envelope")
    }

    async fn run(
        stage: &DedupeStage,
        event: Envelope,
        cx: &Context,
    ) -> Result<usize, &'static str> {
        match stage.process(key_of(&event), cx).await.expect("processes") {
            Outcome::Forward(receipt) => {
                stage.acked(receipt, cx).await.expect("completes");
                Ok(1)
            }
            Outcome::Emit(events, receipt) => {
                stage.acked(receipt, cx).await.expect("completes");
                Ok(events.len())
            }
            Outcome::Discard(reason) => Err(reason),
        }
    }

    #[tokio::test]
    async fn a_message_passes_once() {
        let stage = stage();
        assert_eq!(run(&stage, message("wamid.1"), &at(10)).await, Ok(1));
        assert_eq!(
            run(&stage, message("wamid.1"), &at(11)).await,
            Err("duplicate")
        );
        assert_eq!(run(&stage, message("wamid.2"), &at(12)).await, Ok(1));
    }

    #[tokio::test]
    async fn each_status_of_a_message_passes_once() {
        let stage = stage();
        assert_eq!(
            run(&stage, status("wamid.9", "delivered"), &at(1)).await,
            Ok(1)
        );
        assert_eq!(run(&stage, status("wamid.9", "read"), &at(2)).await, Ok(1));
        assert_eq!(
            run(&stage, status("wamid.9", "delivered"), &at(3)).await,
            Err("duplicate")
        );
        assert_eq!(
            run(&stage, message("wamid.9"), &at(4)).await,
            Ok(1),
            "a message and its status are different keys"
        );
    }

    #[tokio::test]
    async fn a_redelivered_record_resumes_or_is_recognised_as_replayed() {
        let stage = stage();
        // Crash after processing but before the output was acked: the same record comes back.
        assert!(matches!(
            stage.process(key_of(&message("wamid.7")), &at(5)).await,
            Ok(Outcome::Forward(..))
        ));
        assert_eq!(
            run(&stage, message("wamid.7"), &at(5)).await,
            Ok(1),
            "resumed work is emitted"
        );
        // Redelivered after completion (offset not yet committed): recognised, not emitted again.
        assert_eq!(
            run(&stage, message("wamid.7"), &at(5)).await,
            Err("replayed")
        );
    }

    #[tokio::test]
    async fn a_group_is_claimed_and_completed_as_one_after_another() {
        let stage = stage();
        assert_eq!(run(&stage, message("wamid.5"), &at(1)).await, Ok(1));
        let group = vec![
            (key_of(&message("wamid.6")), at(2)),
            (key_of(&message("wamid.5")), at(3)),
            (key_of(&value_error()), at(4)),
            (key_of(&message("wamid.6")), at(5)),
            (key_of(&message("wamid.5")), at(1)),
        ];
        let mut answered: Vec<Processed<ClaimReceipt>> = stage.process_all(group).collect().await;
        answered.sort_by_key(|(index, _)| *index);
        let mut receipts = Vec::new();
        let mut seen = Vec::new();
        for (index, result) in answered {
            match result.expect("processes") {
                Outcome::Forward(receipt) => {
                    receipts.push((receipt, at(index as i64)));
                    seen.push("forward");
                }
                Outcome::Discard(reason) => seen.push(reason),
                Outcome::Emit(..) => panic!("dedupe forwards"),
            }
        }
        assert_eq!(
            seen,
            ["forward", "duplicate", "forward", "duplicate", "replayed"]
        );
        stage.acked_all(receipts).await.expect("completes");
        assert_eq!(
            run(&stage, message("wamid.6"), &at(2)).await,
            Err("replayed"),
            "completed with the group"
        );
    }

    #[tokio::test]
    async fn events_without_identity_pass_through() {
        let stage = stage();
        let event = value_error();
        assert_eq!(run(&stage, event.clone(), &at(1)).await, Ok(1));
        assert_eq!(run(&stage, event, &at(2)).await, Ok(1));
    }
}
