/**
 * The JSON Schema of a control message (schema/control-message.schema.json), derived from the zod
 * schemas the agent verifies with, so the format is described once. The envelope is the message;
 * `$defs.body` describes the JSON inside its base64url `payload`. `npm run schema` writes it; a test
 * checks it is current.
 */
import { z } from 'zod';
import { bodySchema, envelopeSchema } from './envelope.js';

type Json = Record<string, unknown>;

const toJson = (s: z.ZodType): Json =>
  z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;

export function buildControlSchema(): Json {
  const envelope = toJson(envelopeSchema);
  const body = toJson(bodySchema);
  delete body.$schema;
  body.title = 'control message body (the JSON inside payload)';
  return {
    ...envelope,
    $id: 'https://edge-agent.local/schema/control-message.schema.json',
    title: 'edge-agent signed control message (docs/control.md)',
    description:
      'Envelope {v, key_id, payload, sig}: payload is the base64url (no padding) of the UTF-8 JSON body ($defs.body); sig the Ed25519 signature over exactly those bytes, base64url without padding.',
    $defs: { body },
  };
}
