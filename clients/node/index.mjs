// ESM entry: the same implementation as the CommonJS one, so CloudCallError
// is one class whichever way the package is loaded.
import cjs from './index.cjs';

export const { createClient, CloudCallError, ErrCode, authorization, canonicalQuery, functions } = cjs;
export default cjs;
