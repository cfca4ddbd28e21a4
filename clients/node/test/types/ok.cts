// The same package from CommonJS (require conditions, index.d.ts): it must pass.
import cloudcall = require('@cloudcall/client');

export async function quota(): Promise<number> {
  const cc = cloudcall.createClient({ endpoints: { 'logistics-get-quota': 'https://example.fcapp.run' }, keyId: 'backend', secret: 'a-secret-of-16-chars' });
  const r = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
  return r.quotaNum + cloudcall.ErrCode.Throttled;
}
