/**
 * Signed control messages (contract A, docs/control.md). The ONLY format the agent accepts on its
 * control topics (MQTT and Kafka alike):
 *
 *   envelope {"v":1,"key_id":"cloud-1","payload":"<base64url of the UTF-8 JSON body>","sig":"<base64url Ed25519 signature over those bytes>"}
 *   body     {"id","gateway_id","issued_at","expires_at","by","op","detector","params", "valid_for"?}
 *
 * The signature covers the payload bytes exactly as sent (no canonical JSON needed: the body is
 * parsed only after the signature was checked). base64url without padding (RFC 4648 §5). The
 * gateway holds only public keys, each with a key id so keys can be rotated.
 */
import { createPrivateKey, createPublicKey, type KeyObject, randomUUID, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { id } from '../config/schema.js';

export const DEFAULT_KEYS_FILE = '/etc/edge-agent/control-keys.json';
/** issued_at may be at most this far ahead of the gateway clock. */
export const MAX_FUTURE_SKEW_MS = 60_000;
const MAX_RAW = 64 * 1024;
const B64URL = /^[A-Za-z0-9_-]*$/;

export const envelopeSchema = z.strictObject({
  v: z.literal(1),
  key_id: z.string().min(1).max(128).meta({ description: 'Which public key verifies the signature' }),
  payload: z
    .string()
    .regex(B64URL, 'base64url without padding')
    .meta({ description: 'base64url (no padding) of the UTF-8 JSON body' }),
  sig: z
    .string()
    .regex(B64URL, 'base64url without padding')
    .meta({ description: 'base64url (no padding) Ed25519 signature over exactly the payload bytes' }),
});
export type Envelope = z.output<typeof envelopeSchema>;

const rfc3339 = z.iso.datetime({ offset: true, local: false });

/**
 * A duration for `valid_for`: milliseconds, or a string such as 30m. Kept local so the message
 * schema does not depend on the config's transforms.
 */
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
export const validFor = z
  .union([z.number().positive(), z.string().regex(DURATION_RE, 'expected a duration such as 90s, 30m or 2h')])
  .meta({ description: 'How long the change holds; afterwards the file value returns. Milliseconds or 90s, 30m, 2h' });
export function validForMs(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = DURATION_RE.exec(v) as RegExpExecArray;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

const cmdCommon = {
  id: z.string().min(1).max(128).meta({ description: 'Unique message id, echoed in the answer and the audit events' }),
  by: z.string().min(1).max(128).meta({ description: 'Who signed/sent it (person or system)' }),
};

const setCmd = z.strictObject({
  ...cmdCommon,
  op: z.literal('set'),
  detector: id,
  params: z.record(z.string(), z.unknown()).meta({ description: 'Parameters to change, each within control.limits' }),
  valid_for: validFor.optional(),
});
const resetCmd = z.strictObject({ ...cmdCommon, op: z.literal('reset'), detector: id });
const relearnCmd = z.strictObject({ ...cmdCommon, op: z.literal('relearn'), detector: id });
const modelCmd = z.strictObject({
  ...cmdCommon,
  op: z.literal('model'),
  detector: id.optional(),
  params: z.strictObject({ model_version: z.string().min(1).max(128) }),
});

/** What a signed body asks for (the command part; the envelope fields are checked before). */
export const commandSchema = z.discriminatedUnion('op', [setCmd, resetCmd, relearnCmd, modelCmd]);
export type Command = z.output<typeof commandSchema>;

const bodyFields = {
  gateway_id: z.string().min(1).meta({ description: "Must equal the agent's gateway.id" }),
  issued_at: rfc3339.meta({ description: 'RFC 3339 time the message was signed (UTC)' }),
  expires_at: rfc3339.meta({ description: 'RFC 3339 time after which the message is refused (UTC)' }),
};

/** The signed body: the command plus where and when it is valid. */
export const bodySchema = z.discriminatedUnion('op', [
  setCmd.extend(bodyFields),
  resetCmd.extend(bodyFields),
  relearnCmd.extend(bodyFields),
  modelCmd.extend(bodyFields),
]);
export type Body = z.output<typeof bodySchema>;

export interface PublicKeyEntry {
  readonly keyId: string;
  readonly key: KeyObject;
}

const keysFileSchema = z.strictObject({
  keys: z.array(z.strictObject({ key_id: z.string().min(1).max(128), public_key_pem: z.string().min(1) })),
});

/** Parses a keys file (`{"keys":[{"key_id","public_key_pem"}]}`); every key must be Ed25519. */
export function parseKeys(text: string, source: string): Map<string, KeyObject> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not JSON: ${(err as Error).message}`);
  }
  const parsed = keysFileSchema.safeParse(data);
  if (!parsed.success)
    throw new Error(`${source}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const keys = new Map<string, KeyObject>();
  for (const k of parsed.data.keys) {
    let key: KeyObject;
    try {
      key = createPublicKey(k.public_key_pem);
    } catch (err) {
      throw new Error(`${source}: key "${k.key_id}": ${(err as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new Error(`${source}: key "${k.key_id}" is ${key.asymmetricKeyType}, not Ed25519`);
    if (keys.has(k.key_id)) throw new Error(`${source}: duplicate key_id "${k.key_id}"`);
    keys.set(k.key_id, key);
  }
  return keys;
}

/** Where the public keys come from: control.keys_file, else the systemd credential `control-keys`, else the default path. */
export function keysFilePath(keysFile: string | undefined, env: NodeJS.ProcessEnv): string {
  if (keysFile) return keysFile;
  if (env.CREDENTIALS_DIRECTORY) return join(env.CREDENTIALS_DIRECTORY, 'control-keys');
  return DEFAULT_KEYS_FILE;
}

/** Reads the public keys; an error names the file and the problem. */
export function loadKeys(path: string): Map<string, KeyObject> {
  return parseKeys(readFileSync(path, 'utf8'), path);
}

export type VerifyFailure =
  | 'malformed'
  | 'unsigned'
  | 'unknown_key'
  | 'bad_signature'
  | 'bad_body'
  | 'wrong_gateway'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime';

export type Verified =
  | { readonly ok: true; readonly body: Body; readonly keyId: string }
  | { readonly ok: false; readonly kind: VerifyFailure; readonly error: string; readonly id?: string };

export interface VerifyOptions {
  readonly keys: ReadonlyMap<string, KeyObject>;
  readonly gatewayId: string;
  readonly now: number;
  readonly maxLifetimeMs: number;
}

const fail = (kind: VerifyFailure, error: string, msgId?: string): Verified =>
  msgId === undefined ? { ok: false, kind, error } : { ok: false, kind, error, id: msgId };

function issues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
}

/**
 * Checks one raw message: envelope shape, key, signature, then the body (schema, gateway, times).
 * Replay of an already applied id is checked by the caller, which remembers ids.
 */
export function verifyMessage(raw: string | Uint8Array, o: VerifyOptions): Verified {
  const text = typeof raw === 'string' ? raw : Buffer.from(raw).toString('utf8');
  if (text.length > MAX_RAW) return fail('malformed', `message larger than ${MAX_RAW} bytes`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return fail('malformed', `not JSON: ${(err as Error).message}`);
  }
  if (data && typeof data === 'object' && !('sig' in data) && !('payload' in data))
    return fail(
      'unsigned',
      'unsigned message: control messages must be signed envelopes {v, key_id, payload, sig} (docs/control.md)',
    );
  const env = envelopeSchema.safeParse(data);
  if (!env.success) return fail('malformed', `bad envelope: ${issues(env.error)}`);
  const key = o.keys.get(env.data.key_id);
  if (!key) return fail('unknown_key', `unknown key_id "${env.data.key_id}"`);
  const payload = Buffer.from(env.data.payload, 'base64url');
  const sig = Buffer.from(env.data.sig, 'base64url');
  let good = false;
  try {
    good = sig.length === 64 && verify(null, payload, key, sig);
  } catch {
    good = false;
  }
  if (!good) return fail('bad_signature', `bad signature (key_id "${env.data.key_id}")`);
  let bodyData: unknown;
  try {
    bodyData = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return fail('bad_body', `signed payload is not JSON: ${(err as Error).message}`);
  }
  const msgId =
    bodyData && typeof (bodyData as { id?: unknown }).id === 'string'
      ? String((bodyData as { id: string }).id).slice(0, 128)
      : undefined;
  const body = bodySchema.safeParse(bodyData);
  if (!body.success) return fail('bad_body', issues(body.error), msgId);
  const b = body.data;
  if (b.gateway_id !== o.gatewayId)
    return fail('wrong_gateway', `message is for gateway "${b.gateway_id}", this is "${o.gatewayId}"`, b.id);
  const issued = Date.parse(b.issued_at);
  const expires = Date.parse(b.expires_at);
  if (expires <= o.now) return fail('expired', `expired at ${b.expires_at}`, b.id);
  if (issued > o.now + MAX_FUTURE_SKEW_MS) return fail('not_yet_valid', `issued_at ${b.issued_at} is in the future`, b.id);
  if (expires <= issued) return fail('lifetime', 'expires_at must be after issued_at', b.id);
  if (expires - issued > o.maxLifetimeMs)
    return fail(
      'lifetime',
      `lifetime ${Math.round((expires - issued) / 1000)} s exceeds control.max_lifetime (${o.maxLifetimeMs / 1000} s)`,
      b.id,
    );
  return { ok: true, body: b, keyId: env.data.key_id };
}

/** Makes an envelope from a body (the exact bytes signed are the JSON of `body`). */
export function signBody(body: Record<string, unknown>, privateKey: KeyObject | string, keyId: string): Envelope {
  const key = typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey;
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  return { v: 1, key_id: keyId, payload: payload.toString('base64url'), sig: sign(null, payload, key).toString('base64url') };
}

export interface SignOptions {
  readonly gatewayId: string;
  readonly by?: string;
  /** Lifetime of the message, ms (default 5 min). */
  readonly lifetimeMs?: number;
  readonly now?: number;
}

/** Completes a command (`op`, `detector`, `params`, …) with id, gateway, times and signer, then signs it. */
export function signCommand(
  cmd: Record<string, unknown>,
  privateKey: KeyObject | string,
  keyId: string,
  o: SignOptions,
): { envelope: Envelope; body: Record<string, unknown> } {
  const now = o.now ?? Date.now();
  const body: Record<string, unknown> = {
    id: randomUUID(),
    by: o.by ?? keyId,
    ...cmd,
    gateway_id: cmd.gateway_id ?? o.gatewayId,
    issued_at: cmd.issued_at ?? new Date(now).toISOString(),
    expires_at: cmd.expires_at ?? new Date(now + (o.lifetimeMs ?? 300_000)).toISOString(),
  };
  return { envelope: signBody(body, privateKey, keyId), body };
}
