//! `sink:whatsapp`: `wa.send.v1` → the Cloud API → `wa.send-results.v1`.
//!
//! Sends to Meta are not idempotent on Meta's side, so each send is made once by a protocol
//! (the send record is `store::sends`):
//! 1. claim `claim:{send key}` with the input record as owner (a second record with the same key
//!    is a duplicate; the same record redelivered after a crash resumes its claim);
//! 2. write the attempt, its time and what the send is about on `send:{send key}` *before* the
//!    HTTP call, and the wamid after it; the send key also travels in `biz_opaque_callback_data`.
//!    The record expires with the claim (`whatsapp.claim_ttl_secs`, set by the attempt's write,
//!    which precedes every other): a redelivery needs it exactly as long;
//! 3. a resumed claim whose send record holds a wamid emits that result again without sending.
//!    One with an attempt but no wamid is *unanswered* — the call timed out, or the process died
//!    during it — and the request may have reached Meta. It is never sent again: it waits (the
//!    runner retrying it, holding back only its conversation) for the first status webhook of the
//!    message, whose `biz_opaque_callback_data` lets the status path confirm the send and record
//!    its wamid; the send is then reported accepted. If none comes within
//!    `whatsapp.confirm_secs` of the attempt, it is reported failed, "not sent again".
//!
//! Before a free-form message, the 24-hour window is checked (templates are exempt): a closed
//! window fails the send without calling Meta. Pacing: per business number (`whatsapp.mps`) and
//! per (number, customer) pair (`pair_interval_ms`, `pair_burst`) with `governor` limiters, so
//! steady traffic never provokes 130429 or 131056; when Meta still throttles, the runner waits
//! as long as the error says and retries.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota};
use wabaflow_pipeline::config::WhatsAppConfig;
use wabaflow_pipeline::{Context, Outcome, Stage, StageError};
use wabaflow_schemas::genesys::failure_reason;
use wabaflow_schemas::topics::{Topic, WA_SEND, WA_SEND_RESULTS};
use wabaflow_schemas::{Envelope, Event, SendOutcome};
use wabaflow_store::records::Records;
use wabaflow_store::sends::{OutboundSend, SendState, send_record_key};
use wabaflow_store::tenants::TenantRegistry;
use wabaflow_store::{Claim, StateStore, StoreError};

use super::service::{SendError, WhatsAppService};

pub struct WhatsAppSink {
    service: WhatsAppService,
    tenants: TenantRegistry,
    records: Records,
    store: Arc<dyn StateStore>,
    claim_ttl: Duration,
    /// How long an unanswered send waits for a status webhook to confirm it.
    confirm_window: Duration,
    per_number: DefaultKeyedRateLimiter<String>,
    per_pair: DefaultKeyedRateLimiter<(String, String)>,
}

/// The claim to complete once the result is durable.
pub struct SendReceipt(String);

impl WhatsAppSink {
    pub fn new(
        service: WhatsAppService,
        tenants: TenantRegistry,
        records: Records,
        config: &WhatsAppConfig,
    ) -> Self {
        let one = NonZeroU32::MIN;
        // Pacing per number with a tenth of a second of burst: enough to catch up after a slow
        // call, far below Meta's own bucket (a second's worth), which absorbs arrival jitter.
        let mps = NonZeroU32::new(config.mps).unwrap_or(one);
        let per_number =
            Quota::per_second(mps).allow_burst(NonZeroU32::new(config.mps / 10).unwrap_or(one));
        // One message of headroom under Meta's pair burst, for the same reason.
        let pair_burst = NonZeroU32::new(config.pair_burst.saturating_sub(1)).unwrap_or(one);
        let per_pair = Quota::with_period(Duration::from_millis(config.pair_interval_ms.max(1)))
            .unwrap_or(Quota::per_second(one))
            .allow_burst(pair_burst);
        Self {
            store: tenants.store().clone(),
            service,
            tenants,
            records,
            claim_ttl: Duration::from_secs(config.claim_ttl_secs),
            confirm_window: Duration::from_secs(config.confirm_secs),
            per_number: DefaultKeyedRateLimiter::keyed(per_number),
            per_pair: DefaultKeyedRateLimiter::keyed(per_pair),
        }
    }

    /// A send attempted `since` and never answered: still waiting for a status webhook to confirm
    /// it, or, once `confirm_secs` passed, failed without being sent again. While it waits, the
    /// runner asks again no sooner than a second later (or the window's end, if that is nearer),
    /// and later as its backoff grows (up to 30 s between two looks).
    fn unanswered(&self, since: Option<DateTime<Utc>>) -> Result<SendOutcome, StageError> {
        // A clock that went back counts as no time passed.
        let waited = since.map(|since| (Utc::now() - since).to_std().unwrap_or_default());
        let left = waited
            .and_then(|waited| self.confirm_window.checked_sub(waited))
            .filter(|left| !left.is_zero());
        match left {
            Some(left) => Err(StageError::RetryAfter {
                reason: "Meta did not answer the send; waiting for a status webhook to confirm it"
                    .into(),
                after: left.min(Duration::from_secs(1)),
            }),
            None => Ok(Self::failed(
                None,
                format!(
                    "Meta did not answer the send and no status webhook confirmed it within {} s; it was not sent again, to avoid a duplicate",
                    self.confirm_window.as_secs()
                ),
                "GeneralError",
            )),
        }
    }

    fn failed(code: Option<i64>, reason: impl Into<String>, receipt_reason: &str) -> SendOutcome {
        SendOutcome::Failed {
            code,
            reason: reason.into(),
            receipt_reason: receipt_reason.into(),
        }
    }
}

fn unavailable(err: StoreError) -> StageError {
    StageError::Unavailable(err.to_string())
}

#[async_trait]
impl Stage for WhatsAppSink {
    type Input = Envelope;
    type Receipt = SendReceipt;

    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn input(&self) -> Topic {
        WA_SEND
    }

    fn output(&self) -> Option<Topic> {
        Some(WA_SEND_RESULTS)
    }

    async fn process(
        &self,
        envelope: Envelope,
        cx: &Context,
    ) -> Result<Outcome<SendReceipt>, StageError> {
        let Event::WhatsAppSend {
            phone_number_id,
            send_key,
            genesys_message_id,
            window_open,
            request,
        } = &envelope.event
        else {
            return Err(StageError::Invalid(format!(
                "{} event on the send topic",
                envelope.event.kind()
            )));
        };
        let recipient = request
            .to
            .clone()
            .or_else(|| request.recipient.clone())
            .ok_or_else(|| StageError::Invalid("send without a recipient".into()))?;
        let claim_key = format!("claim:{send_key}");
        let owner = cx.origin.text();
        let (claim, record) = self
            .store
            .claim_with_fields(
                &claim_key,
                &owner,
                self.claim_ttl,
                &send_record_key(send_key),
            )
            .await
            .map_err(unavailable)?;
        match claim {
            Claim::Taken => return Ok(Outcome::Discard("duplicate")),
            Claim::Completed => return Ok(Outcome::Discard("replayed")),
            Claim::Resumed | Claim::New => {}
        }
        let known = match SendState::from_fields(&record) {
            SendState::Unsent => None,
            SendState::Sent {
                wamid,
                message_status,
            } => Some((Some(wamid), SendOutcome::Accepted { message_status })),
            SendState::Unanswered { since } => Some((None, self.unanswered(since)?)),
        };

        let (wamid, outcome) = match known {
            Some(known) => known,
            None if !*window_open && !request.body.is_template() => (
                None,
                Self::failed(
                    None,
                    "the 24-hour customer service window is closed: only a template can reach this customer now",
                    "MessageExpired",
                ),
            ),
            None => {
                let tenant_id = envelope
                    .tenant
                    .as_deref()
                    .ok_or_else(|| StageError::Invalid("send without a tenant".into()))?;
                let tenant = self
                    .tenants
                    .get(tenant_id)
                    .await
                    .map_err(|err| StageError::Unavailable(err.to_string()))?
                    .ok_or_else(|| {
                        StageError::Unavailable(format!("tenant {tenant_id} disappeared"))
                    })?;
                self.per_number.until_key_ready(phone_number_id).await;
                self.per_pair
                    .until_key_ready(&(phone_number_id.clone(), recipient.clone()))
                    .await;
                let send = OutboundSend {
                    conversation: envelope.conversation_key.as_str(),
                    tenant: tenant_id,
                    media_type: request.body.kind(),
                    genesys_message_id: genesys_message_id.as_deref(),
                };
                self.records
                    .attempt_send(send_key, &send, Utc::now(), self.claim_ttl)
                    .await
                    .map_err(unavailable)?;
                match self.service.send(&tenant, phone_number_id, request).await {
                    Ok(answer) => {
                        let sent = answer.messages.first().ok_or_else(|| {
                            StageError::Unavailable("Meta accepted without a message id".into())
                        })?;
                        let status = sent
                            .message_status
                            .clone()
                            .unwrap_or_else(|| "accepted".into());
                        self.records
                            .sent(send_key, &sent.id, &status, &send)
                            .await
                            .map_err(unavailable)?;
                        (
                            Some(sent.id.clone()),
                            SendOutcome::Accepted {
                                message_status: Some(status),
                            },
                        )
                    }
                    Err(err) => {
                        let definite = !matches!(
                            err,
                            SendError::Unavailable {
                                maybe_sent: true,
                                ..
                            }
                        );
                        if definite {
                            // Meta answered: it did not take the message, a retry is safe.
                            self.records.not_sent(send_key).await.map_err(unavailable)?;
                        }
                        match err {
                            SendError::Refused { code, message } => {
                                (None, Self::failed(code, message, failure_reason(code)))
                            }
                            SendError::Throttled { code, after } => {
                                return Err(StageError::RetryAfter {
                                    reason: format!("Meta rate limit {code}"),
                                    after,
                                });
                            }
                            // Unanswered, when it may have been sent: the retry waits for its
                            // confirmation.
                            other => return Err(StageError::Unavailable(other.to_string())),
                        }
                    }
                }
            }
        };
        let result = envelope.follow(Event::SendResult {
            phone_number_id: phone_number_id.clone(),
            send_key: send_key.clone(),
            genesys_message_id: genesys_message_id.clone(),
            recipient,
            message_type: request.body.kind().to_owned(),
            wamid,
            outcome,
        });
        Ok(Outcome::Emit(vec![result], SendReceipt(claim_key)))
    }

    async fn acked(&self, receipt: SendReceipt, cx: &Context) -> Result<(), StageError> {
        self.store
            .complete(&receipt.0, &cx.origin.text())
            .await
            .map_err(unavailable)
    }

    /// Completes a group's claims in one round trip.
    async fn acked_all(&self, receipts: Vec<(SendReceipt, Context)>) -> Result<(), StageError> {
        let claims: Vec<(String, String)> = receipts
            .into_iter()
            .map(|(receipt, cx)| (receipt.0, cx.origin.text()))
            .collect();
        self.store.complete_all(&claims).await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use wabaflow_pipeline::config::MetaApiConfig;
    use wabaflow_store::MemoryStore;
    use wabaflow_store::tenants::EncryptionKey;

    use super::*;

    fn confirming_within(confirm_secs: u64) -> WhatsAppSink {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
        let tenants = TenantRegistry::new(store.clone(), &EncryptionKey::generate());
        let config = WhatsAppConfig {
            confirm_secs,
            ..WhatsAppConfig::default()
        };
        let service = WhatsAppService::new(tenants.clone(), &MetaApiConfig::default(), &config)
            .expect("client");
        WhatsAppSink::new(service, tenants, Records::new(store), &config)
    }

    #[test]
    fn an_unanswered_send_waits_for_its_confirmation_then_fails_without_a_second_send() {
        let sink = confirming_within(60);
        let waiting = |since: DateTime<Utc>| match sink.unanswered(Some(since)) {
            Err(StageError::RetryAfter { after, .. }) => after,
            other => panic!("expected a wait, got {other:?}"),
        };
        assert_eq!(waiting(Utc::now()), Duration::from_secs(1));
        let last = waiting(Utc::now() - chrono::TimeDelta::milliseconds(59_700));
        assert!(
            last <= Duration::from_millis(300),
            "{last:?}: no later than the window's end"
        );
        // A clock that went back: no time has passed.
        assert_eq!(
            waiting(Utc::now() + chrono::TimeDelta::seconds(5)),
            Duration::from_secs(1)
        );
        for since in [Some(Utc::now() - chrono::TimeDelta::seconds(61)), None] {
            match sink.unanswered(since) {
                Ok(SendOutcome::Failed { reason, .. }) => {
                    assert!(reason.contains("not sent again"), "{reason}")
                }
                other => panic!("expected a failed send for {since:?}, got {other:?}"),
            }
        }
        // No wait at all when the window is zero.
        assert!(matches!(
            confirming_within(0).unanswered(Some(Utc::now())),
            Ok(SendOutcome::Failed { .. })
        ));
    }
}
