/**
 * `edge-agent ack ASSET --by NAME`: an HTTP client of the running agent's API
 * (`POST /api/assets/:id/ack`, bearer token). It reads `api.listen` and `api.token` from the config file
 * without validating the rest, so it works while another part of the config is being edited.
 */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';

export const DEFAULT_API_LISTEN = '127.0.0.1:8080';
/** sysexits.h EX_UNAVAILABLE: the agent is not reachable. */
export const EX_UNAVAILABLE = 69;
/** sysexits.h EX_TEMPFAIL: refused for now (a tripping condition still holds); try again once it cleared. */
export const EX_REFUSED = 75;

const names = (raised: unknown): string =>
  Array.isArray(raised)
    ? raised.map((c: { detector?: unknown; sensor?: unknown }) => `${String(c.detector)} on ${String(c.sensor)}`).join(', ')
    : '';

export interface AckTarget {
  readonly url: string;
  readonly token: string | undefined;
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const substitute = (v: string, env: NodeJS.ProcessEnv): string =>
  v.replace(ENV_RE, (_, name: string, def?: string) => env[name] ?? def ?? '');

/** Where the API of the agent configured by `file` listens, and its token (after ${ENV} substitution). */
export async function ackTarget(file: string, env: NodeJS.ProcessEnv = process.env): Promise<AckTarget> {
  let api: { listen?: unknown; token?: unknown } = {};
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const doc = parse(text) as { api?: typeof api } | null;
    api = doc?.api ?? {};
  }
  const listen = typeof api.listen === 'string' ? substitute(api.listen, env) : DEFAULT_API_LISTEN;
  const token = typeof api.token === 'string' ? substitute(api.token, env) : undefined;
  const base = /^https?:\/\//.test(listen) ? listen : `http://${listen}`;
  return { url: base.replace(/\/$/, ''), token: token || undefined };
}

export interface AckOutcome {
  readonly exitCode: number;
  readonly message: string;
}

/** Sends the acknowledgement. Never throws: every outcome is a message and an exit code. */
export async function sendAck(target: AckTarget, asset: string, by: string, timeoutMs = 5000): Promise<AckOutcome> {
  const url = `${target.url}/api/assets/${encodeURIComponent(asset)}/ack`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
      },
      body: JSON.stringify({ by }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    return {
      exitCode: EX_UNAVAILABLE,
      message: `the agent is not reachable at ${target.url} (${cause}): is it running, and does api.listen in the config match?`,
    };
  }
  const body = await res.text().catch(() => '');
  let detail = body.trim();
  let parsed: { error?: string; message?: string; deferred?: unknown; raised?: unknown } | undefined;
  try {
    parsed = JSON.parse(body) as typeof parsed;
    detail = parsed?.error ?? parsed?.message ?? detail;
  } catch {}
  if (res.ok) {
    const deferred = parsed?.deferred === true;
    return {
      exitCode: 0,
      message: deferred
        ? `${asset}: acknowledged by ${by}; released by itself once its tripping conditions clear (${names(parsed?.raised)})`
        : `${asset}: trip acknowledged by ${by}`,
    };
  }
  if (res.status === 401 || res.status === 403)
    return { exitCode: 77, message: `the agent refused the token (HTTP ${res.status}); check api.token in the config` };
  if (res.status === 404) return { exitCode: 1, message: `unknown asset "${asset}"${detail ? `: ${detail}` : ''}` };
  if (res.status === 409 && Array.isArray(parsed?.raised))
    // Contract C: refused while a tripping condition still holds; the agent's sentence names them.
    return { exitCode: EX_REFUSED, message: detail || `${asset} stays tripped: ${names(parsed.raised)} still raised` };
  if (res.status === 409) return { exitCode: 1, message: `${asset} is not tripped; nothing to acknowledge` };
  return { exitCode: 1, message: `the agent answered HTTP ${res.status}${detail ? `: ${detail}` : ''}` };
}
