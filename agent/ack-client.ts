/**
 * `edge-agent ack ASSET --by NAME`: an HTTP client of the running agent's API
 * (`POST /api/assets/:id/ack`, bearer token). It reads `api.listen`, `api.token` and `api.token_file`
 * from the config file without validating the rest, so it works while another part of the config is
 * being edited, and finds the token where the agent does (see `findToken`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
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
  /** Where the token came from, or every place looked at when none was found (for the error message). */
  readonly tokenFrom: string;
}

/** The file `scripts/install.sh` writes and the unit hands to the agent as the credential "api-token". */
export const INSTALLED_TOKEN_FILE = '/etc/edge-agent/credentials/api-token';

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const substitute = (v: string, env: NodeJS.ProcessEnv): string =>
  v.replace(ENV_RE, (_, name: string, def?: string) => env[name] ?? def ?? '');

/**
 * The token, looked for in the agent's own order: `--token-file`, `api.token` (after ${ENV}
 * substitution), `api.token_file`, the systemd credential `api-token` in $CREDENTIALS_DIRECTORY,
 * and the file the installer writes for that credential.
 */
async function findToken(
  api: { token?: unknown; token_file?: unknown },
  env: NodeJS.ProcessEnv,
  tokenFile: string | undefined,
): Promise<{ token: string | undefined; from: string }> {
  const inline = typeof api.token === 'string' ? substitute(api.token, env).trim() : '';
  const files: string[] = [];
  if (tokenFile) files.push(tokenFile);
  else if (inline) return { token: inline, from: 'api.token' };
  else {
    if (typeof api.token_file === 'string') files.push(substitute(api.token_file, env));
    if (env.CREDENTIALS_DIRECTORY) files.push(join(env.CREDENTIALS_DIRECTORY, 'api-token'));
    files.push(INSTALLED_TOKEN_FILE);
  }
  const tried: string[] = [];
  for (const f of files) {
    try {
      const token = (await readFile(f, 'utf8')).trim();
      if (token) return { token, from: f };
      tried.push(`${f} (empty)`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      tried.push(
        code === 'EACCES' ? `${f} (permission denied: run as root, or pass --token-file)` : `${f} (${code ?? 'unreadable'})`,
      );
    }
  }
  return {
    token: undefined,
    from: `no token found; looked at ${inline || tokenFile ? '' : 'api.token (empty), '}${tried.join(', ')}`,
  };
}

/** Where the API of the agent configured by `file` listens, and its token. */
export async function ackTarget(file: string, env: NodeJS.ProcessEnv = process.env, tokenFile?: string): Promise<AckTarget> {
  let api: { listen?: unknown; token?: unknown; token_file?: unknown } = {};
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
  const { token, from } = await findToken(api, env, tokenFile);
  const base = /^https?:\/\//.test(listen) ? listen : `http://${listen}`;
  return { url: base.replace(/\/$/, ''), token, tokenFrom: from };
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
    return {
      exitCode: 77,
      message: target.token
        ? `the agent refused the token from ${target.tokenFrom} (HTTP ${res.status})`
        : `the agent needs a token (HTTP ${res.status}): ${target.tokenFrom}`,
    };
  if (res.status === 404) return { exitCode: 1, message: `unknown asset "${asset}"${detail ? `: ${detail}` : ''}` };
  if (res.status === 409 && Array.isArray(parsed?.raised))
    // Contract C: refused while a tripping condition still holds; the agent's sentence names them.
    return { exitCode: EX_REFUSED, message: detail || `${asset} stays tripped: ${names(parsed.raised)} still raised` };
  if (res.status === 409) return { exitCode: 1, message: `${asset} is not tripped; nothing to acknowledge` };
  return { exitCode: 1, message: `the agent answered HTTP ${res.status}${detail ? `: ${detail}` : ''}` };
}
