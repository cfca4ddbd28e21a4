// cloudcall caller signing for Node.js 18+ (no dependencies).
import { createHash, createHmac, randomBytes } from 'node:crypto';

const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
// '+' is a space; decodeURIComponent throws on a bad % escape or bytes that are not UTF-8.
const dec = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
const utf8Order = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

// Throws on a query the canonical form cannot represent (';', a bad % escape): never sign around it.
export function canonicalQuery(query = '') {
  return query.split('&').filter((piece) => piece !== '').map((piece) => {
    if (piece.includes(';')) throw new Error(`cloudcall: ';' in the query cannot be signed: ${piece}`);
    const i = piece.indexOf('=');
    return i < 0 ? [dec(piece), ''] : [dec(piece.slice(0, i)), dec(piece.slice(i + 1))];
  }).sort((a, b) => utf8Order(a[0], b[0]) || utf8Order(a[1], b[1]))
    .map(([k, v]) => enc(k) + '=' + enc(v))
    .join('&');
}

export function cloudcallAuthorization({ keyId, secret, method, path, query = '', body = '',
  timestamp = Math.floor(Date.now() / 1000), nonce = randomBytes(16).toString('hex') }) {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const stringToSign = ['CLOUDCALL-HMAC-SHA256', method.toUpperCase(), path || '/', canonicalQuery(query),
    String(timestamp), nonce, bodyHash].join('\n');
  const signature = createHmac('sha256', secret).update(stringToSign).digest('hex');
  return `CLOUDCALL-HMAC-SHA256 KeyId=${keyId},Timestamp=${timestamp},Nonce=${nonce},Signature=${signature}`;
}
