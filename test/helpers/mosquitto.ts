import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { waitFor } from './wait.js';

export interface MosquittoOptions {
  /** Adds a TLS listener with a throwaway CA, server and client certificate. */
  tls?: boolean;
  /** TLS clients must present a certificate signed by the CA (mutual TLS). */
  requireClientCert?: boolean;
  /** Persist sessions and queued messages in `dir` so they survive restart(). Default true. */
  persistence?: boolean;
  /**
   * Require these users (name → password): a password_file made with `mosquitto_passwd` (hashed) and
   * `allow_anonymous false`. Without it, anonymous clients are allowed.
   */
  users?: Record<string, string>;
}

export interface Mosquitto {
  port: number;
  tlsPort?: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  dir: string;
  /** Stops the broker and deletes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** Stops the broker cleanly (it writes its persistence file) and starts it again on the same ports. */
  restart(): Promise<void>;
  /** Sends a signal to the broker process: SIGSTOP freezes it (sockets stay open, nothing answers), SIGCONT thaws it. */
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void;
}

const READY_TIMEOUT_MS = 15_000;

let binaryCache: string | null | undefined;

// Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
function mosquittoBinary(): string | null {
  binaryCache ??=
    [process.env.MOSQUITTO_BIN, 'mosquitto', '/usr/sbin/mosquitto']
      .filter((c): c is string => !!c)
      .find((c) => !spawnSync(c, ['-h'], { stdio: 'ignore' }).error) ?? null;
  return binaryCache;
}

function passwdBinary(): string | undefined {
  return [process.env.MOSQUITTO_PASSWD_BIN, 'mosquitto_passwd', '/usr/bin/mosquitto_passwd']
    .filter((c): c is string => !!c)
    .find((c) => !spawnSync(c, ['-h'], { stdio: 'ignore' }).error);
}

/** Why Mosquitto tests cannot run here, or undefined when they can. */
export function mosquittoUnavailable(options: MosquittoOptions = {}): string | undefined {
  if (!mosquittoBinary()) return 'mosquitto not found on PATH or in /usr/sbin (apt-get install mosquitto)';
  if (options.users && !passwdBinary()) return 'mosquitto_passwd not found (it comes with the mosquitto package)';
  if (options.tls && spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0) return 'openssl not found';
  return undefined;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCertificates(dir: string) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=edge-agent test CA']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [
    ['server', '127.0.0.1'],
    ['client', 'edge-agent-test-client'],
  ] as const) {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ]);
  }
  return {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts a private Mosquitto on 127.0.0.1 with its config, log, persistence and certificates in a fresh temp dir.
 * Resolves once every listener accepts TCP connections.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const { tls = false, requireClientCert = false, persistence = true, users } = options;
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-'));
  const passwordFile = join(dir, 'passwd');
  if (users) {
    const bin = passwdBinary();
    if (!bin) throw new Error(mosquittoUnavailable(options));
    writeFileSync(passwordFile, '', { mode: 0o600 });
    // -b: password on the command line (a test secret); the file holds salted hashes, as on a plant broker.
    for (const [name, password] of Object.entries(users)) execFileSync(bin, ['-b', passwordFile, name, password]);
  }
  const certs = tls ? makeCertificates(dir) : undefined;
  const configFile = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  let port = 0;
  let tlsPort: number | undefined;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const writeConfig = () => {
    const lines = [
      'per_listener_settings false',
      ...(users ? ['allow_anonymous false', `password_file ${passwordFile}`] : ['allow_anonymous true']),
      'set_tcp_nodelay true',
      // Run as whoever runs the tests: as root, Mosquitto would otherwise drop to the "mosquitto" user and
      // lose access to the temp dir. For non-root users the option is ignored.
      `user ${userInfo().username}`,
      `log_dest file ${logFile}`,
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'connection_messages true',
      `persistence ${persistence}`,
      `persistence_location ${dir}/`,
      'persistence_file mosquitto.db',
      'max_queued_messages 10000',
      `listener ${port} 127.0.0.1`,
    ];
    if (certs && tlsPort) {
      lines.push(
        `listener ${tlsPort} 127.0.0.1`,
        `cafile ${certs.caFile}`,
        `certfile ${certs.certFile}`,
        `keyfile ${certs.keyFile}`,
        `require_certificate ${requireClientCert}`,
      );
    }
    writeFileSync(configFile, `${lines.join('\n')}\n`);
  };

  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '(no log)';
    }
  };

  const launch = async () => {
    const binary = mosquittoBinary();
    if (!binary) throw new Error(mosquittoUnavailable());
    const proc = spawn(binary, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
    });
    let exitedEarly = false;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    proc.once('exit', () => {
      exitedEarly = true;
    });
    child = proc;
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.removeListener('exit', killOnExit));
    const ports = tlsPort ? [port, tlsPort] : [port];
    await waitFor(
      async () => {
        if (exitedEarly) throw new Error(`mosquitto exited: ${stderr}\n${readLog()}`);
        return (await Promise.all(ports.map(accepts))).every(Boolean);
      },
      { what: `mosquitto to accept connections on ${ports.join(', ')}`, timeoutMs: READY_TIMEOUT_MS },
    ).catch(async (error: Error) => {
      proc.kill('SIGKILL');
      await exited;
      throw error;
    });
  };

  const halt = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGCONT');
    // SIGTERM, not SIGKILL: Mosquitto writes its persistence file on a clean shutdown.
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  // A port from freePort() can be taken before Mosquitto binds it; try again with fresh ports.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    tlsPort = undefined;
    while (tls && (tlsPort === undefined || tlsPort === port)) tlsPort = await freePort();
    writeConfig();
    try {
      await launch();
      break;
    } catch (error) {
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  let stopped = false;
  return {
    port,
    tlsPort,
    ...certs,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      if (stopped) throw new Error('restart() after stop()');
      await halt();
      await launch();
    },
    signal(sig) {
      child?.kill(sig);
    },
  };
}
