/**
 * Control-message signing for tests: a fresh Ed25519 key pair, its keys file for control.keys_file,
 * and signed envelopes (contract A) made exactly as a cloud signer would.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signBody } from '../../agent/control/envelope.js';

export interface TestSigner {
  readonly keysFile: string;
  readonly keyId: string;
  readonly privateKey: KeyObject;
  /** A signed envelope (JSON text) of `cmd`, completed with id, gateway, by and times unless given. */
  sign(cmd: Record<string, unknown>, opts?: { now?: number; lifetimeMs?: number; key?: KeyObject; keyId?: string }): string;
}

let seq = 0;

export function testSigner(dir: string, gatewayId: string, keyId = 'test-1'): TestSigner {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keysFile = join(dir, 'control-keys.json');
  writeFileSync(
    keysFile,
    JSON.stringify({ keys: [{ key_id: keyId, public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }] }),
  );
  return {
    keysFile,
    keyId,
    privateKey,
    sign(cmd, o = {}) {
      const now = o.now ?? Date.now();
      const body = {
        id: `msg-${process.pid}-${++seq}`,
        by: 'test-signer',
        gateway_id: gatewayId,
        issued_at: new Date(now).toISOString(),
        expires_at: new Date(now + (o.lifetimeMs ?? 300_000)).toISOString(),
        ...cmd,
      };
      return JSON.stringify(signBody(body, o.key ?? privateKey, o.keyId ?? keyId));
    },
  };
}
