// Agents replying through Genesys: Open Messaging outbound webhooks, signed base64 with the
// integration's secret. setup() first has every customer write (a Meta webhook), which opens the
// 24-hour window and creates the conversation mapping; then agents reply at a fixed rate.
//
//   k6 run -e BASE_URL=http://localhost:8080 \
//          -e TENANTS=acme:acme-app-secret:106540352242922:acme-genesys-hook:acme-integration \
//          -e REPLY_RATE=50 -e CUSTOMERS=500 load-tests/k6/genesys-outbound.js
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import * as genesys from './lib/genesys.js';
import * as meta from './lib/meta.js';
import { pick, tenants } from './lib/tenants.js';

const TENANTS = tenants();
const RATE = Number(__ENV.REPLY_RATE || 50);
const CUSTOMERS = Number(__ENV.CUSTOMERS || 500);
const DURATION = __ENV.DURATION || '2m';

export const options = {
  setupTimeout: '5m',
  scenarios: {
    replies: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 20,
      maxVUs: 200,
    },
  },
  thresholds: {
    'http_req_failed{kind:genesys}': ['rate<0.001'],
    'http_req_duration{kind:genesys}': ['p(99)<50'],
    checks: ['rate>0.999'],
    dropped_iterations: ['count==0'],
  },
};

function customer(n) {
  return `4477012${String(n % CUSTOMERS).padStart(5, '0')}`;
}

export function setup() {
  for (const tenant of TENANTS) {
    if (!tenant.genesysSecret || !tenant.integrationId) {
      throw new Error(`tenant ${tenant.id}: TENANTS needs the Genesys webhook secret and integration id`);
    }
  }
  for (let n = 0; n < CUSTOMERS; n += 1) {
    const tenant = pick(TENANTS, n);
    const res = meta.post(tenant, meta.text(tenant, customer(n), 'Hi, I need help'), 'inbound');
    check(res, { 'customer message accepted': (r) => r.status === 200 });
  }
  // Let the inbound chain record the mappings before agents answer.
  sleep(Number(__ENV.SETUP_SETTLE_SECONDS || 5));
}

export default function () {
  const n = exec.scenario.iterationInTest % CUSTOMERS;
  const tenant = pick(TENANTS, n);
  const body = genesys.agentText(tenant.integrationId, customer(n), `Agent reply ${exec.scenario.iterationInTest}`);
  const res = genesys.post(tenant, body);
  check(res, { 'reply accepted': (r) => r.status === 200 });
}
