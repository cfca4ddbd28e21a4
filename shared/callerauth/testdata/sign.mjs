// cloudcall caller signing for Node.js 18+ (no dependencies).
import { createHash, createHmac, randomBytes } from 'node:crypto';

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

export function cloudcallAuthorization({ keyId, secret, method, path, query = '', body = '' }) {
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString('hex');
  const canonicalQuery = [...new URLSearchParams(query)]
    .sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1]))
    .map(([k, v]) => enc(k) + '=' + enc(v))
    .join('&');
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const stringToSign = ['CLOUDCALL-HMAC-SHA256', method.toUpperCase(), path || '/', canonicalQuery,
    String(timestamp), nonce, bodyHash].join('\n');
  const signature = createHmac('sha256', secret).update(stringToSign).digest('hex');
  return `CLOUDCALL-HMAC-SHA256 KeyId=${keyId},Timestamp=${timestamp},Nonce=${nonce},Signature=${signature}`;
}
