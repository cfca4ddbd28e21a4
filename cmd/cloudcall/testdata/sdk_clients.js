// Drives `cloudcall local` with the platforms' own Node SDKs: the AWS SDK v3
// LambdaClient and Alibaba Cloud's FC 3.0 client. Prints one JSON object of
// what each saw; the Go test asserts on it. Usage: node sdk_clients.js <base>
'use strict';
const { LambdaClient, InvokeCommand } = require('@aws-sdk/client-lambda');
const FC = require('@alicloud/fc20230330');
const { $OpenApiUtil } = require('@alicloud/openapi-core');
const { Readable } = require('stream');

const base = process.argv[2];
const example = JSON.stringify({ deliveryId: 'YTO', bizId: 'xyz' });

async function readAll(body) {
  const chunks = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

async function lambda() {
  const client = new LambdaClient({
    endpoint: base, region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const out = {};
  try {
    await client.send(new InvokeCommand({ FunctionName: 'nope', Payload: Buffer.from('{}') }));
    out.unknown = { error: null };
  } catch (e) {
    out.unknown = { name: e.name, message: e.message, status: e.$metadata && e.$metadata.httpStatusCode, requestId: e.$metadata && e.$metadata.requestId };
  }
  const ok = await client.send(new InvokeCommand({
    FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:logistics-get-quota',
    Payload: Buffer.from(example), LogType: 'Tail',
  }));
  out.ok = {
    status: ok.StatusCode, version: ok.ExecutedVersion, functionError: ok.FunctionError || null,
    payload: Buffer.from(ok.Payload).toString('utf8'),
    log: Buffer.from(ok.LogResult || '', 'base64').toString('utf8'),
    requestId: ok.$metadata.requestId,
  };
  return out;
}

async function fc() {
  const u = new URL(base);
  const client = new FC.default(new $OpenApiUtil.Config({
    accessKeyId: 'local', accessKeySecret: 'local', endpoint: u.host, protocol: 'http', regionId: 'cn-hangzhou',
  }));
  const out = {};
  try {
    await client.invokeFunction('nope', new FC.InvokeFunctionRequest({ body: Readable.from([Buffer.from('{}')]) }));
    out.unknown = { error: null };
  } catch (e) {
    out.unknown = { name: e.name, code: e.code, message: e.message, status: e.statusCode, requestId: e.data && e.data.RequestId };
  }
  const headers = new FC.InvokeFunctionHeaders({ xFcLogType: 'Tail' });
  const ok = await client.invokeFunctionWithOptions('logistics-get-quota',
    new FC.InvokeFunctionRequest({ body: Readable.from([Buffer.from(example)]) }), headers, {});
  out.ok = {
    status: ok.statusCode, payload: await readAll(ok.body),
    log: Buffer.from(ok.headers['x-fc-log-result'] || '', 'base64').toString('utf8'),
    requestId: ok.headers['x-fc-request-id'],
  };
  return out;
}

(async () => {
  const result = { lambda: await lambda(), fc: await fc() };
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
