// Type-checked by test/package.test.mjs: tsc must refuse it, naming the misspelled field bizID (bizId).
import { createClient } from '@cloudcall/client';

const cc = createClient({ baseUrl: 'http://127.0.0.1:9000', keyId: 'backend', secret: 'a-secret-of-16-chars' });
export const r = await cc.openapi.logistics.getQuota({ deliveryId: 'YTO', bizID: 'xyz' });
