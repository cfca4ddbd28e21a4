// Type-checked by test/package.test.mjs with `tsc --strict --noEmit` against the packed package: it must pass.
import { createClient, CloudCallError, ErrCode, functions } from '@cloudcall/client';
import type { GetQuotaOutput, InboundBoxInput, LaunchExtraChargeOutput, ClientOptions } from '@cloudcall/client';

export async function main(): Promise<number> {
  const options: ClientOptions = { baseUrl: 'http://127.0.0.1:9000', keyId: 'backend', secret: 'a-secret-of-16-chars', timeoutMs: 5000 };
  const cc = createClient(options);
  // keyId and secret omitted together: unsigned calls, for a function that allows anonymous ones.
  const anonymous = createClient({ baseUrl: 'http://127.0.0.1:9000', fetch: (url, init) => fetch(url, init) });
  await anonymous.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
  const charges: string[] = functions.filter((f) => f.takesIdempotencyKey).map((f) => f.api);
  const q: GetQuotaOutput = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
  const balance: number = q.quotaNum;
  const box: InboundBoxInput = { warehouseId: 'US', boxes: [{ weight: 1200, length: 30, width: 20, height: 15, quantity: 2 }] };
  const quote = await cc.ck1.pricing.inboundBox(box, { timeoutMs: 3000 });
  const codes: string[] = quote.services.map((s) => s.serviceCode);
  const waba = await cc.cams.queryChatappBindWaba({ custSpaceId: '293483949493' });
  const ok: 0 = waba.errCode;
  const charge: LaunchExtraChargeOutput = await cc.top.ascp.launchExtraCharge(
    { omsLaunchExtraChargeParameter: { wdsCoordinationOrderId: 'BFC123', price: 12345, type: 2 } },
    { idempotencyKey: 'order-42-visit-2', signal: AbortSignal.timeout(10000) },
  );
  try {
    await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: '' });
  } catch (e) {
    if (e instanceof CloudCallError) {
      const field: string | undefined = e.field;
      const code: number = e.errCode;
      const wait: number | undefined = e.retryAfter;
      const status: number = e.status;
      if (code === ErrCode.InvalidInput) return -1; // branch on a named code, typed as its literal
      const unknown: -1304 = ErrCode.OutcomeUnknown;
      return code + status + unknown + (wait ?? 0) + (field?.length ?? 0);
    }
    throw e;
  }
  // A test double of the client's error, as a user's own tests build one.
  const mock = new CloudCallError({ errCode: -1304, errMsg: 'top.ascp.launchExtraCharge:fail outcome unknown', api: 'top.ascp.launchExtraCharge',
    function: 'top-launch-extra-charge', idempotencyKey: 'order-42-visit-2' });
  return balance + codes.length + charges.length + ok + charge.result.data.extraChargeServiceOrderId.length + mock.errCode;
}
