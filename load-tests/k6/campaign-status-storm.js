// A broadcast campaign's status storm: RECIPIENTS messages went out, and Meta now sends their
// sent, delivered and read statuses (a few failed with 131026) as fast as it can. This is the
// heaviest webhook load a broadcast sender sees: three to four webhooks per recipient within
// minutes. The meter prices the sent/delivered ones; transform turns tracked ones into receipts.
//
//   k6 run -e BASE_URL=http://localhost:8080 -e TENANTS=acme:acme-app-secret:106540352242922 \
//          -e RECIPIENTS=100000 -e STORM_RATE=3000 load-tests/k6/campaign-status-storm.js
import { check } from 'k6';
import exec from 'k6/execution';
import { post, status } from './lib/meta.js';
import { pick, tenants } from './lib/tenants.js';

const TENANTS = tenants();
const RECIPIENTS = Number(__ENV.RECIPIENTS || 100000);
const RATE = Number(__ENV.STORM_RATE || 3000);
// 2 % of the campaign fails (undeliverable): sent, then failed.
const FAILED_EVERY = 50;

export const options = {
  scenarios: {
    storm: {
      executor: 'shared-iterations',
      vus: Math.min(2000, Math.max(50, Math.ceil(RATE / 20))),
      iterations: RECIPIENTS * 3,
      maxDuration: `${Math.ceil((RECIPIENTS * 3) / RATE) + 120}s`,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: ['p(99)<100'],
  },
};

// Iteration 3r+k is the kth status of recipient r: sent first, then delivered (or failed), then read.
export default function () {
  const n = exec.scenario.iterationInTest;
  const recipient = Math.floor(n / 3);
  const step = n % 3;
  const tenant = pick(TENANTS, recipient);
  const customer = `4477011${String(recipient % 100000).padStart(5, '0')}`;
  const id = `wamid.k6storm.${exec.scenario.startTime}.${recipient}`;
  const failed = recipient % FAILED_EVERY === 0;
  const state = step === 0 ? 'sent' : failed ? 'failed' : step === 1 ? 'delivered' : 'read';
  if (failed && step === 2) {
    return; // nothing after a failure
  }
  const res = post(tenant, status(tenant, customer, id, state, 'marketing'), 'status');
  check(res, { 'status accepted': (r) => r.status === 200 });
}
