// Type-checked by test/package.test.mjs: tsc must refuse it, naming the misspelled result field quotaNumber (quotaNum).
import { createClient } from '@cloudcall/client';

const cc = createClient({ baseUrl: 'http://127.0.0.1:9000', keyId: 'backend', secret: 'a-secret-of-16-chars' });
const r = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizId: 'xyz' });
export const n: number = r.quotaNumber;
