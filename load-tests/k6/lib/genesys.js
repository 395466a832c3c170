// Genesys Cloud Open Messaging outbound webhooks (an agent's reply), signed the way Genesys signs
// them: `X-Hub-Signature-256: sha256=<base64 HMAC-SHA256(integration secret, body)>` — base64, not
// hex (docs/WIRE.md §3.4).
import crypto from 'k6/crypto';
import http from 'k6/http';
import { BASE_URL } from './tenants.js';

function uuid() {
  return `${Date.now().toString(16)}-${__VU}-${__ITER}-${Math.floor(Math.random() * 1e9).toString(16)}`;
}

// An agent's text to `customer` (who must have written first: outside the 24-hour window a text is
// refused with a Failed receipt, as WhatsApp would).
export function agentText(integrationId, customer, text) {
  const id = uuid();
  return {
    id,
    channel: {
      id: integrationId,
      platform: 'Open',
      type: 'Private',
      to: { id: customer, idType: 'Opaque' },
      from: { nickname: 'Agent', id: integrationId, idType: 'Opaque' },
      time: new Date().toISOString(),
      messageId: id,
    },
    type: 'Text',
    text,
    originatingEntity: 'Human',
    direction: 'Outbound',
    conversationId: uuid(),
  };
}

export function sign(secret, body) {
  return `sha256=${crypto.hmac('sha256', secret, body, 'base64')}`;
}

export function post(tenant, webhook) {
  const body = JSON.stringify(webhook);
  return http.post(`${BASE_URL}/webhooks/genesys/${tenant.id}`, body, {
    headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sign(tenant.genesysSecret, body) },
    tags: { kind: 'genesys' },
  });
}
