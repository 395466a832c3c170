// Bursts: a quiet baseline with two spikes (a marketing push, a reconnecting Meta backlog), to see
// the edge absorb them — the producer queue and Kafka take the spike, answers stay fast, nothing is
// refused unless the producer queue is really full (then 503, and Meta retries).
//
//   k6 run -e BASE_URL=http://localhost:8080 -e TENANTS=acme:acme-app-secret:106540352242922 \
//          -e BASE_RATE=50 -e BURST_RATE=2000 load-tests/k6/burst.js
import { check } from 'k6';
import exec from 'k6/execution';
import { post, text } from './lib/meta.js';
import { pick, tenants } from './lib/tenants.js';

const TENANTS = tenants();
const BASE = Number(__ENV.BASE_RATE || 50);
const BURST = Number(__ENV.BURST_RATE || 2000);

export const options = {
  scenarios: {
    bursts: {
      executor: 'ramping-arrival-rate',
      startRate: BASE,
      timeUnit: '1s',
      preAllocatedVUs: 200,
      maxVUs: 2000,
      stages: [
        { target: BASE, duration: '30s' },
        { target: BURST, duration: '5s' },
        { target: BURST, duration: '10s' },
        { target: BASE, duration: '5s' },
        { target: BASE, duration: '30s' },
        { target: BURST, duration: '2s' },
        { target: BURST, duration: '10s' },
        { target: BASE, duration: '2s' },
        { target: BASE, duration: '30s' },
      ],
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    http_req_duration: ['p(95)<50', 'p(99)<200'],
    dropped_iterations: ['count==0'],
  },
};

export default function () {
  const n = exec.scenario.iterationInTest;
  const tenant = pick(TENANTS, n);
  const customer = `4477010${String(n % 20000).padStart(5, '0')}`;
  const res = post(tenant, text(tenant, customer, `burst ${n}`), 'inbound');
  check(res, { 'accepted': (r) => r.status === 200 });
}
