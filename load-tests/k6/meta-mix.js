// The traffic a WhatsApp receiver sees, per tenant: customer messages plus about three status
// webhooks (sent, delivered, read) per outbound message, each at a fixed arrival rate (open loop:
// a slow wabaflow shows up as latency and dropped iterations, not as a gentler load).
//
//   k6 run -e BASE_URL=http://localhost:8080 -e TENANTS=acme:acme-app-secret:106540352242922 \
//          -e INBOUND_RATE=100 -e OUTBOUND_RATE=100 -e DURATION=2m load-tests/k6/meta-mix.js
import { check } from 'k6';
import exec from 'k6/execution';
import { post, status, text } from './lib/meta.js';
import { pick, tenants } from './lib/tenants.js';

const TENANTS = tenants();
const INBOUND_RATE = Number(__ENV.INBOUND_RATE || 100);
const OUTBOUND_RATE = Number(__ENV.OUTBOUND_RATE || 100);
const DURATION = __ENV.DURATION || '2m';
const CUSTOMERS = Number(__ENV.CUSTOMERS || 5000);
const STATES = ['sent', 'delivered', 'read'];

export const options = {
  scenarios: {
    inbound: {
      executor: 'constant-arrival-rate',
      exec: 'inbound',
      rate: INBOUND_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 50,
      maxVUs: 500,
    },
    statuses: {
      executor: 'constant-arrival-rate',
      exec: 'statuses',
      rate: 3 * OUTBOUND_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 100,
      maxVUs: 1000,
    },
  },
  thresholds: {
    // Every webhook acknowledged (2xx only after the Kafka ack) ...
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    // ... quickly: Meta gives up on a webhook after 20 s and then retries, with backoff.
    'http_req_duration{kind:inbound}': ['p(99)<50'],
    'http_req_duration{kind:status}': ['p(99)<50'],
    // The load was offered: wabaflow was never so slow that k6 ran out of VUs.
    dropped_iterations: ['count==0'],
  },
};

export function inbound() {
  const n = exec.scenario.iterationInTest;
  const tenant = pick(TENANTS, n);
  const customer = `4477009${String(n % CUSTOMERS).padStart(5, '0')}`;
  const res = post(tenant, text(tenant, customer, `Hello, this is message ${n}`), 'inbound');
  check(res, { 'inbound accepted': (r) => r.status === 200 });
}

// Iterations 3k, 3k+1, 3k+2 are the sent, delivered and read statuses of outbound message k.
export function statuses() {
  const n = exec.scenario.iterationInTest;
  const message = Math.floor(n / 3);
  const tenant = pick(TENANTS, message);
  const customer = `4477009${String(message % CUSTOMERS).padStart(5, '0')}`;
  const id = `wamid.k6mix.${exec.scenario.startTime}.${message}`;
  const res = post(tenant, status(tenant, customer, id, STATES[n % 3], 'utility'), 'status');
  check(res, { 'status accepted': (r) => r.status === 200 });
}
