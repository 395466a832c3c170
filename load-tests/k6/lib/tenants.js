// Tenants under load, from the TENANTS environment variable:
//   TENANTS="acme:acme-app-secret:106540352242922:acme-genesys-hook:acme-integration,globex:…"
// (id : Meta app secret : phone_number_id : Genesys webhook secret : Genesys integration id; the
// last two only for genesys-outbound.js). Each must be registered in the
// wabaflow under test (`wabaflow tenants put`), or its webhooks are refused with 401/404.
export function tenants() {
  const raw = __ENV.TENANTS || 'acme:acme-app-secret:106540352242922:acme-genesys-hook:acme-integration';
  return raw.split(',').map((entry) => {
    const [id, appSecret, phoneNumberId, genesysSecret, integrationId] = entry.split(':');
    if (!id || !appSecret || !phoneNumberId) {
      throw new Error(`TENANTS entry "${entry}" is not id:app_secret:phone_number_id[:genesys_secret]`);
    }
    return { id, appSecret, phoneNumberId, genesysSecret: genesysSecret || '', integrationId: integrationId || '' };
  });
}

export const BASE_URL = __ENV.BASE_URL || 'http://localhost:8080';

// Deterministic pick, so a VU spreads its requests over every tenant.
export function pick(list, n) {
  return list[n % list.length];
}
