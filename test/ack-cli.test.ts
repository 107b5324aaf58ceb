/**
 * `edge-agent ack` as an HTTP client of the agent's API (the API itself lands with the ops issue #8;
 * its end-to-end test comes with it). Here a stand-in HTTP server plays the endpoint's contract:
 * POST /api/assets/:id/ack, bearer token, {"by": NAME}.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ackTarget } from '../agent/ack-client.js';
import { freePort } from './helpers/free-port.js';
import { tempDir } from './helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// Asynchronous on purpose: the stand-in server runs in this process and must keep answering.
const cli = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['bin/edge-agent.js', ...args],
      { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

async function standIn(token: string): Promise<{ port: number; requests: Array<{ url: string; auth?: string; body: string }> }> {
  const requests: Array<{ url: string; auth?: string; body: string }> = [];
  const tripped = new Set(['pump-1']);
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ url: req.url ?? '', auth: req.headers.authorization, body });
      const m = /^\/api\/assets\/([^/]+)\/ack$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) return void res.writeHead(404).end();
      if (req.headers.authorization !== `Bearer ${token}`) return void res.writeHead(401).end('{"error":"bad token"}');
      const asset = decodeURIComponent(m[1] as string);
      if (!tripped.has(asset)) return void res.writeHead(409).end('{"error":"not tripped"}');
      tripped.delete(asset);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"acknowledged":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const addr = server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : 0, requests };
}

describe('edge-agent ack', () => {
  it('posts the ack with the token from the config (environment substituted) and reports each answer', async () => {
    const api = await standIn('s3cret');
    const dir = tempDir();
    cleanups.push(dir.remove);
    const file = join(dir.path, 'agent.yaml');
    writeFileSync(file, `api:\n  listen: 127.0.0.1:${api.port}\n  token: \${EDGE_API_TOKEN}\nsources: []\n`);
    const ok = await cli(['ack', 'pump-1', '--by', 'alice', '--config', file], { EDGE_API_TOKEN: 's3cret' });
    expect(ok.stdout).toContain('pump-1: trip acknowledged by alice');
    expect(ok.status).toBe(0);
    expect(api.requests[0]).toEqual({ url: '/api/assets/pump-1/ack', auth: 'Bearer s3cret', body: '{"by":"alice"}' });

    const again = await cli(['ack', 'pump-1', '--by', 'alice', '--config', file], { EDGE_API_TOKEN: 's3cret' });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('pump-1 is not tripped');

    const wrong = await cli(['ack', 'pump-1', '--by', 'alice', '--config', file], { EDGE_API_TOKEN: 'nope' });
    expect(wrong.status).toBe(77);
    expect(wrong.stderr).toContain('refused the token');
  });

  it('says clearly when the agent is not reachable', async () => {
    const port = await freePort();
    const dir = tempDir();
    cleanups.push(dir.remove);
    const file = join(dir.path, 'agent.yaml');
    writeFileSync(file, `api: { listen: "127.0.0.1:${port}", token: t }\n`);
    const res = await cli(['ack', 'pump-1', '--by', 'alice', '--config', file]);
    expect(res.status).toBe(69);
    expect(res.stderr).toContain(`the agent is not reachable at http://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it('needs an asset and --by; without an api section it uses the default address', async () => {
    expect((await cli(['ack', 'pump-1'])).status).toBe(64);
    const dir = tempDir();
    cleanups.push(dir.remove);
    const file = join(dir.path, 'agent.yaml');
    writeFileSync(file, 'sources: []\n');
    expect(await ackTarget(file, {})).toMatchObject({ url: 'http://127.0.0.1:8080', token: undefined });
  });

  it('finds the token where the agent does: api.token_file, the credential, or --token-file', async () => {
    const api = await standIn('from-file');
    const dir = tempDir();
    cleanups.push(dir.remove);
    const tokenFile = join(dir.path, 'token');
    writeFileSync(tokenFile, 'from-file\n');
    const withFile = join(dir.path, 'with-file.yaml');
    writeFileSync(withFile, `api:\n  listen: 127.0.0.1:${api.port}\n  token: \${EDGE_API_TOKEN:-}\n  token_file: ${tokenFile}\n`);
    const viaConfig = await cli(['ack', 'pump-1', '--by', 'alice', '--config', withFile]);
    expect(viaConfig.stderr).toBe('');
    expect(viaConfig.status).toBe(0);
    expect(api.requests.at(-1)?.auth).toBe('Bearer from-file');

    // The systemd credential directory, as the unit hands it to the agent.
    const creds = join(dir.path, 'credentials');
    mkdirSync(creds);
    writeFileSync(join(creds, 'api-token'), 'from-file');
    const bare = join(dir.path, 'bare.yaml');
    writeFileSync(bare, `api:\n  listen: 127.0.0.1:${api.port}\n`);
    expect(await ackTarget(bare, { CREDENTIALS_DIRECTORY: creds })).toMatchObject({
      token: 'from-file',
      tokenFrom: join(creds, 'api-token'),
    });

    // --token-file wins over everything; without any token the message says where it looked.
    const missing = await cli(['ack', 'pump-1', '--by', 'alice', '--config', bare, '--token-file', join(dir.path, 'nope')]);
    expect(missing.status).toBe(77);
    expect(missing.stderr).toContain(`needs a token (HTTP 401): no token found; looked at ${join(dir.path, 'nope')} (ENOENT)`);
  });

  it('prints its version', async () => {
    const res = await cli(['--version']);
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/^edge-agent \d+\.\d+\.\d+\n$/);
  });
});
