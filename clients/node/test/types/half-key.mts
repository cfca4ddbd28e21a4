// Type-checked by test/package.test.mjs: tsc must refuse it: a keyId without its secret.
import { createClient } from '@cloudcall/client';

export const cc = createClient({ baseUrl: 'http://127.0.0.1:9000', keyId: 'backend' });
