/**
 * The agent's one MQTT client, shared by the MQTT source, the mqtt-publish actuator and the control
 * topic: TLS with certificate files, the password from an environment variable (or the file), reconnect
 * with jittered exponential backoff, TCP_NODELAY on every socket, and the same connect, reconnect and
 * error logging. Each caller keeps its own session settings, subscriptions and handlers.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { type IClientOptions, type IConnackPacket, MqttClient } from 'mqtt';
import { Backoff } from './backoff.js';
import type { MqttTlsConfig } from './config/schema.js';
import { type Logger, RateLimitedLog } from './log.js';

/** The connection keys every MQTT component's config shares. */
export interface MqttConnectionConfig {
  readonly url: string;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly password_env?: string | undefined;
  readonly tls?: MqttTlsConfig | undefined;
}

/**
 * MQTT.js options: broker address from the URL, credentials, TLS material read from its files, then the
 * caller's session options. Throws (a config error) when a file or the password variable is missing.
 */
export function mqttClientOptions(
  config: MqttConnectionConfig,
  session: IClientOptions,
  env: NodeJS.ProcessEnv = process.env,
): IClientOptions {
  const url = new URL(config.url);
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:')
    throw new Error(`${config.url}: expected mqtt://host:port or mqtts://host:port`);
  const secure = url.protocol === 'mqtts:';
  const opts: IClientOptions = {
    host: url.hostname,
    port: Number(url.port || (secure ? 8883 : 1883)),
    protocol: secure ? 'mqtts' : 'mqtt',
    ...session,
  };
  if (config.username !== undefined) opts.username = config.username;
  if (config.password !== undefined && config.password_env !== undefined)
    throw new Error('give password or password_env, not both');
  if (config.password !== undefined) opts.password = config.password;
  if (config.password_env !== undefined) {
    const password = env[config.password_env];
    if (password === undefined) throw new Error(`environment variable ${config.password_env} (password_env) is not set`);
    opts.password = password;
  }
  if (config.tls) {
    const t = config.tls;
    opts.rejectUnauthorized = t.reject_unauthorized;
    if (t.ca_file) opts.ca = readFileSync(t.ca_file);
    if (t.cert_file) opts.cert = readFileSync(t.cert_file);
    if (t.key_file) opts.key = readFileSync(t.key_file);
    if (t.servername) opts.servername = t.servername;
  }
  return opts;
}

export interface MqttConnectOptions {
  /** From `mqttClientOptions`. */
  readonly options: IClientOptions;
  /** First reconnect delay; doubles per failure (with jitter) up to `reconnectMaxMs`, reset on CONNACK. */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** The broker as configured, for logs. */
  readonly broker: string;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Each CONNACK, after the connection was logged. */
  readonly onConnect?: (connack: IConnackPacket) => void;
  /** Each unexpected close, with the delay before the next attempt. */
  readonly onReconnect?: (delayMs: number) => void;
  /** Each new connection's socket (TCP or TLS), before MQTT.js reads from it. */
  readonly onSocket?: (socket: Socket) => void;
}

const noLog = (): void => {};

/** Creates the client and starts connecting; it reconnects by itself until `end()`. */
export function connectMqtt(o: MqttConnectOptions): MqttClient {
  const opts: IClientOptions = { ...o.options, reconnectPeriod: o.reconnectMinMs };
  // MQTT.js calls its `debug` logger several times per packet, formatting arguments even when it is off
  // (about 1 µs per message in a CPU profile at 20k messages/s); DEBUG=mqttjs* still turns it on.
  if (opts.log === undefined && !/mqttjs/.test(process.env.DEBUG ?? '')) opts.log = noLog;
  const { host, port } = opts as { host: string; port: number };
  const secure = opts.protocol === 'mqtts';
  const streamBuilder = () => {
    const socket = secure
      ? tlsConnect({
          host,
          port,
          ca: opts.ca,
          cert: opts.cert,
          key: opts.key,
          rejectUnauthorized: opts.rejectUnauthorized,
          servername: opts.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host),
        })
      : netConnect({ host, port });
    // Field notes: Nagle's algorithm dominates MQTT latency on loopback and LANs.
    socket.setNoDelay(true);
    o.onSocket?.(socket);
    return socket;
  };
  const client = new MqttClient(streamBuilder, opts);
  const backoff = new Backoff({ baseMs: o.reconnectMinMs, maxMs: o.reconnectMaxMs });
  const warnings = new RateLimitedLog(60_000, o.now);
  const { logger, broker } = o;
  client.on('connect', (connack) => {
    backoff.succeed();
    client.options.reconnectPeriod = o.reconnectMinMs;
    logger.info({ broker, session_present: connack.sessionPresent }, 'mqtt connected');
    o.onConnect?.(connack);
  });
  // Prepended: MQTT.js's own 'close' listener schedules the reconnect with the period set here.
  client.prependListener('close', () => {
    if (client.disconnecting) return;
    const delay = backoff.fail(Date.now());
    // MQTT.js reads reconnectPeriod each time it schedules a reconnect: this turns it into backoff with jitter.
    client.options.reconnectPeriod = delay;
    o.onReconnect?.(delay);
    warnings.log(logger, 'warn', 'close', { broker, retry_in_ms: delay }, 'mqtt connection closed; reconnecting');
  });
  client.on('error', (err) => {
    // Refused CONNACK (bad credentials, not authorised) and TLS failures need a person; socket errors recover.
    const auth = /not authori[sz]ed|bad user name|certificate|handshake|self.signed|unable to verify/i.test(err.message);
    warnings.log(logger, auth ? 'error' : 'warn', auth ? 'auth' : 'error', { broker, err: err.message }, 'mqtt error');
  });
  return client;
}
