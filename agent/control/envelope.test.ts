import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KEYS_FILE, keysFilePath, parseKeys, signBody, signCommand, verifyMessage } from './envelope.js';
import { buildControlSchema } from './json-schema.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
/** The system python first (Debian's python3-cryptography, python3-jsonschema), like the pymodbus tests. */
const pythonWith = (mod: string) =>
  ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0);
const pair = () => generateKeyPairSync('ed25519');
const { privateKey, publicKey } = pair();
const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const keys = parseKeys(JSON.stringify({ keys: [{ key_id: 'cloud-1', public_key_pem: pem }] }), 'keys.json');
const opts = { keys, gatewayId: 'gw-1', now: NOW, maxLifetimeMs: 3_600_000 };
const body = (over: Record<string, unknown> = {}) => ({
  id: 'm-1',
  gateway_id: 'gw-1',
  issued_at: '2026-06-01T11:59:00Z',
  expires_at: '2026-06-01T12:04:00Z',
  by: 'cloud',
  op: 'set',
  detector: 'hot',
  params: { setpoint: 80 },
  ...over,
});
const verifyBody = (b: Record<string, unknown>) => verifyMessage(JSON.stringify(signBody(b, privateKey, 'cloud-1')), opts);

describe('signed control messages (contract A)', () => {
  it('accepts a well-signed body and returns it', () => {
    const res = verifyBody(body());
    expect(res).toMatchObject({ ok: true, keyId: 'cloud-1', body: { id: 'm-1', op: 'set', params: { setpoint: 80 } } });
  });

  it('rejects unsigned, malformed, unknown-key, forged and tampered messages, each with its kind', () => {
    expect(verifyMessage(JSON.stringify(body()), opts)).toMatchObject({ ok: false, kind: 'unsigned' });
    expect(verifyMessage('nope', opts)).toMatchObject({ ok: false, kind: 'malformed' });
    const env = signBody(body(), privateKey, 'cloud-1');
    expect(verifyMessage(JSON.stringify({ ...env, key_id: 'other' }), opts)).toMatchObject({ ok: false, kind: 'unknown_key' });
    const forged = signBody(body(), pair().privateKey, 'cloud-1');
    expect(verifyMessage(JSON.stringify(forged), opts)).toMatchObject({ ok: false, kind: 'bad_signature' });
    const other = Buffer.from(JSON.stringify(body({ params: { setpoint: 95 } }))).toString('base64url');
    expect(verifyMessage(JSON.stringify({ ...env, payload: other }), opts)).toMatchObject({ ok: false, kind: 'bad_signature' });
    expect(verifyMessage(JSON.stringify({ ...env, sig: `${env.sig}==` }), opts)).toMatchObject({ ok: false, kind: 'malformed' });
  });

  it('rejects expired, future, too long-lived and other-gateway messages', () => {
    expect(verifyBody(body({ expires_at: '2026-06-01T11:59:59Z' }))).toMatchObject({ ok: false, kind: 'expired', id: 'm-1' });
    expect(verifyBody(body({ issued_at: '2026-06-01T12:01:01Z' }))).toMatchObject({ ok: false, kind: 'not_yet_valid' });
    expect(verifyBody(body({ expires_at: '2026-06-01T13:00:00.001Z' }))).toMatchObject({ ok: false, kind: 'lifetime' });
    expect(verifyBody(body({ gateway_id: 'gw-2' }))).toMatchObject({ ok: false, kind: 'wrong_gateway' });
    expect(verifyBody(body({ id: undefined }))).toMatchObject({ ok: false, kind: 'bad_body' });
  });

  it('signCommand fills id, gateway, times and signer', () => {
    const { envelope, body: b } = signCommand({ op: 'reset', detector: 'hot' }, privateKey, 'cloud-1', {
      gatewayId: 'gw-1',
      by: 'tech',
      now: NOW,
    });
    expect(b).toMatchObject({ gateway_id: 'gw-1', by: 'tech', issued_at: '2026-06-01T12:00:00.000Z' });
    expect(verifyMessage(JSON.stringify(envelope), opts)).toMatchObject({ ok: true, body: { op: 'reset' } });
  });

  const py = pythonWith('cryptography');
  if (!py && process.env.CI) throw new Error('CI must run the Python interoperability check (python3-cryptography)');
  if (!py) console.warn('\n!!! SKIPPING the Python signing check: no python3 with cryptography\n');
  it.skipIf(!py)("verifies a message signed by Python's cryptography (the cloud side)", () => {
    const script = `
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
k = Ed25519PrivateKey.generate()
body = json.dumps({"id": "py-1", "gateway_id": "gw-1", "issued_at": "2026-06-01T11:59:30+00:00",
  "expires_at": "2026-06-01T12:09:30+00:00", "by": "spark", "op": "set", "detector": "hot",
  "params": {"setpoint": 82.5}}, separators=(",", ":")).encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
print(json.dumps({"pem": pem, "msg": {"v": 1, "key_id": "spark-1", "payload": b64(body), "sig": b64(k.sign(body))}}))
`;
    const out = spawnSync(py as string, ['-c', script], { encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const { pem: pyPem, msg } = JSON.parse(out.stdout) as { pem: string; msg: unknown };
    const pyKeys = parseKeys(JSON.stringify({ keys: [{ key_id: 'spark-1', public_key_pem: pyPem }] }), 'py.json');
    const res = verifyMessage(JSON.stringify(msg), { ...opts, keys: pyKeys });
    expect(res).toMatchObject({ ok: true, body: { id: 'py-1', params: { setpoint: 82.5 } } });
  });

  it('public keys come from control.keys_file, else the systemd credential, else the default path; only Ed25519', () => {
    expect(keysFilePath('/etc/x.json', { CREDENTIALS_DIRECTORY: '/run/credentials/edge-agent.service' })).toBe('/etc/x.json');
    expect(keysFilePath(undefined, { CREDENTIALS_DIRECTORY: '/run/credentials/edge-agent.service' })).toBe(
      '/run/credentials/edge-agent.service/control-keys',
    );
    expect(keysFilePath(undefined, {})).toBe(DEFAULT_KEYS_FILE);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => parseKeys(JSON.stringify({ keys: [{ key_id: 'r', public_key_pem: rsa }] }), 'k.json')).toThrow(/not Ed25519/);
  });

  it('schema/control-message.schema.json is current (npm run schema)', () => {
    expect(JSON.parse(readFileSync('schema/control-message.schema.json', 'utf8'))).toEqual(buildControlSchema());
  });

  const pyJs = pythonWith('jsonschema');
  if (!pyJs && process.env.CI) throw new Error('CI must run the JSON Schema check (python3-jsonschema)');
  if (!pyJs) console.warn('\n!!! SKIPPING the JSON Schema check: no python3 with jsonschema\n');
  it.skipIf(!pyJs)('the JSON Schema accepts what the agent accepts and refuses what it refuses (python jsonschema)', () => {
    const env = signBody(body({ valid_for: '30m' }), privateKey, 'cloud-1');
    const cases = {
      good_envelope: [env, true],
      padded_sig: [{ ...env, sig: `${env.sig}==` }, false],
      extra_key: [{ ...env, x: 1 }, false],
      good_body: [body({ valid_for: '30m' }), true],
      reset_body: [body({ op: 'reset', params: undefined }), true],
      model_body: [body({ op: 'model', detector: undefined, params: { model_version: 'v2' } }), true],
      no_expiry: [body({ expires_at: undefined }), false],
      bad_op: [body({ op: 'shutdown' }), false],
      local_time: [body({ issued_at: '2026-06-01T11:59:00' }), false],
    };
    const script = `
import json, sys, jsonschema
schema = json.load(open("schema/control-message.schema.json"))
body = dict(schema["$defs"]["body"], **{"$defs": schema["$defs"]})
out = {}
for name, doc in json.loads(sys.stdin.read()).items():
    try:
        jsonschema.validate(doc, schema if "sig" in doc else body, format_checker=jsonschema.FormatChecker())
        out[name] = True
    except jsonschema.ValidationError:
        out[name] = False
print(json.dumps(out))
`;
    const docs = Object.fromEntries(Object.entries(cases).map(([k, [doc]]) => [k, doc]));
    const out = spawnSync(pyJs as string, ['-c', script], { input: JSON.stringify(docs), encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual(Object.fromEntries(Object.entries(cases).map(([k, [, ok]]) => [k, ok])));
  });
});
