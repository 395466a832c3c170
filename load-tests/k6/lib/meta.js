// Meta WhatsApp Cloud API webhooks as Meta sends them (docs/WIRE.md §1): one entry per WABA, one
// change per value, string timestamps, `wamid.` ids; signed `X-Hub-Signature-256: sha256=<hex>` with
// HMAC-SHA256 of the exact body bytes under the app secret.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import http from 'k6/http';
import { BASE_URL } from './tenants.js';

let sequence = 0;

// A unique wamid per VU and iteration: `wamid.` + base64, the shape Meta uses.
export function wamid() {
  sequence += 1;
  return `wamid.${encoding.b64encode(`k6.${__VU}.${__ITER}.${sequence}.${Date.now()}`)}`;
}

function now() {
  return Math.floor(Date.now() / 1000).toString();
}

function envelope(tenant, value) {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: `waba-${tenant.id}`,
        changes: [
          {
            field: 'messages',
            value: Object.assign(
              {
                messaging_product: 'whatsapp',
                metadata: { display_phone_number: '15550000000', phone_number_id: tenant.phoneNumberId },
              },
              value,
            ),
          },
        ],
      },
    ],
  };
}

// A customer's text message.
export function text(tenant, customer, body) {
  return envelope(tenant, {
    contacts: [{ profile: { name: `Customer ${customer}` }, wa_id: customer }],
    messages: [{ from: customer, id: wamid(), timestamp: now(), type: 'text', text: { body } }],
  });
}

// A status of an outbound message (`sent`, `delivered`, `read`, `failed`), with PMP pricing.
export function status(tenant, customer, id, state, category) {
  const item = { id, status: state, timestamp: now(), recipient_id: customer };
  if (state === 'sent' || state === 'delivered') {
    item.pricing = { billable: true, pricing_model: 'PMP', category: category || 'utility', type: 'regular' };
  }
  if (state === 'failed') {
    item.errors = [{ code: 131026, title: 'Message undeliverable', message: 'Message undeliverable' }];
  }
  return envelope(tenant, { statuses: [item] });
}

export function sign(secret, body) {
  return `sha256=${crypto.hmac('sha256', secret, body, 'hex')}`;
}

// Posts a webhook to the tenant's URL, signed with its app secret. Tagged by kind for thresholds.
export function post(tenant, webhook, kind) {
  const body = JSON.stringify(webhook);
  return http.post(`${BASE_URL}/webhooks/meta/${tenant.id}`, body, {
    headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sign(tenant.appSecret, body) },
    tags: { kind },
  });
}
