// Type-checked by test/package.test.mjs: tsc must refuse it: neither baseUrl nor endpoints.
import { createClient } from '@cloudcall/client';

export const cc = createClient({ keyId: 'backend', secret: 'a-secret-of-16-chars' });
