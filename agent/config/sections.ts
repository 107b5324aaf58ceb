/**
 * The core sections of the configuration: everything but detection. The detection sections
 * (detectors, model, ensembles) belong to their own folders and are composed with these in
 * agent/schema.ts. Driver-specific options live in each driver's own schema
 * (drivers/<name>/schema.ts) and are validated in a second pass once the driver type is known.
 */
import { z } from 'zod';
import { EVENT_KINDS, METRICS } from '../types.js';
import { byteSize, duration, id } from './primitives.js';

export const gatewaySchema = z
  .strictObject({
    id: id.default('gateway-1').meta({ description: 'Identifies this gateway in every synced record' }),
    site: z.string().optional().meta({ description: 'Free text: plant, line or cell' }),
    helper_nice: z.int().min(0).max(19).default(19).meta({
      description:
        "Nice value of the agent's helper threads: the store writer, libuv's pool (the latch journal's fdatasync), worker threads. The main thread (readings → stops) and V8's platform threads (the main thread waits for them in garbage collection) keep the process's priority, so under CPU contention a helper waking does not take a core from a reading (Linux; a thread is only lowered, never raised; 0: leave them). A higher value applies on reload without restarting the agent, a lower one at the next start",
    }),
  })
  .prefault({});

export const storeSchema = z
  .strictObject({
    path: z.string().default('./data/agent.db').meta({ description: 'SQLite event store file' }),
    synchronous: z.enum(['FULL', 'NORMAL', 'OFF']).default('FULL').meta({
      description:
        'SQLite durability (docs/sync.md). FULL: the WAL is synced at every commit; SQLite documents a committed batch as durable across power loss on storage that honours flushes (gateway default). NORMAL: faster; a power loss may roll back the last batches. OFF: tests only.',
    }),
    flush_interval: duration.prefault('200ms').meta({ description: 'Longest an accepted event waits before it is written' }),
    batch_size: z.int().min(1).max(100_000).default(2000).meta({ description: 'Events per write transaction' }),
    max_bytes: byteSize.prefault('1GB').meta({
      description:
        'Cap on the events not yet acknowledged by Kafka (payload bytes). When reached, routine events are evicted oldest first, anomalies, actions and audit events last; every eviction is counted and raises an alarm. 0: no cap',
    }),
    min_free_bytes: byteSize.prefault('100MB').meta({
      description:
        'Free-space floor on the store filesystem. Below it, synced events are deleted, then unsent events evicted as for max_bytes. 0: no floor',
    }),
    retention_age: duration.prefault('24h').meta({ description: 'Synced events are kept this long for replay' }),
    retention_bytes: byteSize.prefault('256MB').meta({ description: 'and at most this many payload bytes of them' }),
    memory_buffer: z.int().min(1000).max(10_000_000).default(200_000).meta({
      description:
        'Events held in memory while the store cannot be written (disk full, unopenable). Beyond it routine events are dropped first, counted, and an alarm is raised',
    }),
    latch_journal: z.string().optional().meta({
      description:
        'Latch journal, a regular file (a device or pipe is refused): each trip is written here 1 ms after its stop commands left (write(2), then fdatasync(2) off the main thread) and read back at start, so the latch and the stop survive a crash. Default: <path>.latches (none for :memory:)',
    }),
    startup_check: z.enum(['quick', 'none']).default('quick').meta({
      description:
        'quick: PRAGMA quick_check at start; a corrupt file is renamed to <path>.corrupt-<time> and a fresh store starts (with an alarm). none: only corruption found when opening is caught',
    }),
  })
  .prefault({});

export const logSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .prefault({});

export const aggregationSchema = z
  .strictObject({
    window: duration
      .prefault('10s')
      .meta({ description: 'Tumbling event-time window of the routine per-sensor aggregates kept in the store' }),
  })
  .prefault({});

export const apiUserSchema = z.strictObject({
  name: z.string().trim().min(1).max(64).meta({ description: 'Who this is; the audit trail of an acknowledgement names them' }),
  token_sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, { message: 'expected the SHA-256 of the token as 64 lowercase hex digits' })
    .meta({
      description: 'SHA-256 (hex) of the person\'s token: `printf %s "$TOKEN" | sha256sum`. The token itself is never stored',
    }),
});

export const apiSchema = z
  .strictObject({
    enabled: z.boolean().default(true).meta({ description: 'Serve the local HTTP API and dashboard' }),
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:8080' })
      .default('127.0.0.1:8080')
      .meta({
        description:
          'host:port of the API and dashboard. A non-loopback address (the plant network) needs `tls` and, for 0.0.0.0 or [::], `allowed_hosts`',
      }),
    token: z.string().optional().meta({
      description:
        'The API token: a bearer token for tools and the CLI, and a dashboard login (with the person\'s name). Take it from the environment (EDGE_API_TOKEN), never write it in the file. Empty or unset: token_file, then the systemd credential "api-token"; with none (and no users), acknowledging is disabled',
    }),
    token_file: z.string().optional().meta({
      description: 'File holding the API token, e.g. one passed by systemd LoadCredential= (in $CREDENTIALS_DIRECTORY)',
    }),
    users: z.array(apiUserSchema).default([]).meta({
      description:
        'Per-person tokens: each logs in to the dashboard (or sends `Authorization: Bearer`) as its name, so the audit says who acknowledged',
    }),
    allowed_hosts: z
      .array(z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)$/, { message: 'expected a host name or address, no port' }))
      .default([])
      .meta({
        description:
          'Host names (Host header, without port) the API answers to, besides localhost, 127.0.0.1, [::1] and the listen address. Every other Host is refused with 403, also on loopback (DNS rebinding)',
      }),
    tls: z
      .strictObject({
        cert_file: z
          .string()
          .meta({ description: 'PEM certificate (chain) of the dashboard, e.g. $CREDENTIALS_DIRECTORY/api-cert' }),
        key_file: z.string().meta({ description: 'PEM private key of that certificate' }),
      })
      .optional()
      .meta({ description: 'Serve HTTPS with this certificate and key (required when listen is not a loopback address)' }),
    public_read: z.boolean().optional().meta({
      description:
        'Serve the read-only routes (twin, series, events, status, metrics) without login. Unset: true when listen is a loopback address, false otherwise. /healthz and /readyz never need a login',
    }),
    session_ttl: duration.prefault('12h').meta({ description: 'A dashboard login lasts this long (a shift)' }),
    login_max_failures: z.int().min(1).max(1000).default(5).meta({
      description: 'Failed logins (or wrong bearer tokens) per client address within login_window; then 429 until it passes',
    }),
    login_window: duration.prefault('1m'),
  })
  .prefault({});

export const twinSchema = z
  .strictObject({
    interval: duration
      .prefault('1m')
      .meta({ description: "Every asset's twin is written to the store this often, besides on every state change" }),
    history: duration.prefault('5m').meta({ description: 'How much recent history per sensor the dashboard charts show' }),
  })
  .prefault({});

export const sensorSchema = z.strictObject({
  id,
  metric: z.enum(METRICS),
  unit: z.string().default(''),
  source: id.meta({ description: 'Id of the source (driver instance) that reads this sensor' }),
  address: z
    .record(z.string(), z.unknown())
    .optional()
    .meta({ description: "Where the source finds the value; its keys are the source driver's (see its README)" }),
  min: z.number().optional().meta({ description: 'Lowest physically valid value; below is quality "bad"' }),
  max: z.number().optional().meta({ description: 'Highest physically valid value; above is quality "bad"' }),
  range_trip: z.boolean().optional().meta({
    description:
      "Default true. A reading past min/max on the side a tripping detector of this sensor watches (above: max, below: min, both for zscore/multivariate) trips that interlock, as a raised 'range:above_max'/'range:below_min' condition. Only where min/max are set. false: such a reading is only quality bad (edge-agent validate warns)",
  }),
});

export const assetSchema = z.strictObject({
  id,
  name: z.string().optional(),
  sensors: z.array(sensorSchema).min(1),
});

/** Every source and actuator entry has these; the rest is the driver's own schema. */
export const driverEntrySchema = z.looseObject({
  id,
  type: z.string().meta({ description: 'Driver name, e.g. simulator, modbus, mqtt' }),
});

export const timeSchema = z
  .strictObject({
    allowed_lateness: duration.prefault('2s').meta({
      description:
        'Watermark = latest event time seen from a source minus this; windows close when the watermark passes their end',
    }),
    late_policy: z
      .enum(['drop', 'emit'])
      .default('drop')
      .meta({ description: 'Readings older than the watermark: drop (and count) or emit them as late events' }),
    max_clock_skew: duration
      .prefault('10s')
      .meta({ description: 'Readings stamped further ahead of the gateway clock are rejected and counted' }),
    trusted_after: z.iso.datetime({ offset: true }).default('2024-01-01T00:00:00Z').meta({
      description:
        'Event times (and a gateway clock) before this are untrusted (no NTP yet): such readings are counted and their anomalies carry clock_trusted: false, and skew is not checked. edge-agent backtest replays history with a replay clock and does not flag it',
    }),
  })
  .prefault({});

export const captureSchema = z
  .strictObject({
    before: duration.prefault('10s').meta({ description: 'Raw readings kept from before an anomaly is raised' }),
    after: duration.prefault('5s').meta({ description: 'Raw readings kept after it' }),
    max_readings: z.int().min(0).max(1_000_000).default(20_000).meta({
      description:
        'Most readings held per asset (the ring grows on demand from the asset rate and before, up to this); 0 disables capture',
    }),
  })
  .prefault({});

/** TLS to an MQTT broker (the MQTT source, the mqtt-publish actuator and the control topic). */
export const mqttTlsSchema = z.strictObject({
  ca_file: z.string().optional().meta({ description: 'CA certificate (PEM) that signed the broker certificate' }),
  cert_file: z.string().optional().meta({ description: 'Client certificate (PEM) for mutual TLS' }),
  key_file: z.string().optional().meta({ description: 'Client private key (PEM)' }),
  reject_unauthorized: z.boolean().default(true).meta({ description: 'Verify the broker certificate; leave on' }),
  servername: z.string().optional().meta({ description: 'Name to verify in the broker certificate (default: the host)' }),
});

export type MqttTlsConfig = z.output<typeof mqttTlsSchema>;

/** Name of the environment variable holding an MQTT password (the secret stays out of the file). */
export const mqttPasswordEnv = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
  .meta({ description: 'Name of the environment variable holding the password (the secret stays out of the file)' });

export const controlSchema = z
  .strictObject({
    mqtt: z
      .strictObject({
        url: z
          .string()
          .regex(/^mqtts?:\/\//, { message: 'expected mqtt://host:port or mqtts://host:port' })
          .meta({ description: 'Broker URL, e.g. mqtt://127.0.0.1:1883, or mqtts://host:8883 for TLS' }),
        topic: z.string().min(1).meta({ description: 'Control messages arrive here (QoS 1)' }),
        reply_topic: z.string().optional().meta({ description: 'Each message is answered here with {id, ok, error}' }),
        client_id: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional().meta({ description: 'Prefer password_env; never commit a password' }),
        password_env: mqttPasswordEnv.optional(),
        tls: mqttTlsSchema.optional(),
      })
      .optional(),
    kafka: z
      .strictObject({
        topic: z
          .string()
          .min(1)
          .meta({ description: 'Control messages are consumed from this topic (brokers and security from sync.kafka)' }),
        reply_topic: z.string().optional().meta({ description: 'Each message is answered here with {id, ok, error}' }),
        group_id: z.string().optional().meta({ description: 'Consumer group; default edge-agent-control.<gateway id>' }),
      })
      .optional(),
    keys_file: z.string().optional().meta({
      description:
        'JSON file of the Ed25519 public keys that may sign control messages ({"keys":[{"key_id","public_key_pem"}]}). Unset: the systemd credential "control-keys" (in $CREDENTIALS_DIRECTORY), else /etc/edge-agent/control-keys.json',
    }),
    max_lifetime: duration
      .prefault('1h')
      .meta({ description: 'A control message whose expires_at is further than this after its issued_at is refused' }),
    limits: z
      .record(id, z.record(z.string(), z.tuple([z.number(), z.number()])))
      .default({})
      .meta({
        description:
          'What control messages may change, with bounds: {detector id: {parameter: [min, max]}}. Anything not listed is refused. Durations in ms',
      }),
    weakening: z.enum(['expiry', 'reject']).default('expiry').meta({
      description:
        'A change that makes protection weaker than the file (higher high limit, wider delta, longer delay): expiry = only with valid_for, after which the file value returns; reject = never',
    }),
    max_valid_for: duration.prefault('8h').meta({ description: 'Longest valid_for a control message may ask for' }),
    max_rate: z.number().positive().max(10_000).default(20).meta({
      description:
        'Control messages checked per second (burst: as many); beyond it they are refused unchecked, so a flood of forged messages cannot take the CPU from detection',
    }),
  })
  .prefault({});

export const syncSchema = z
  .strictObject({
    kafka: z
      .strictObject({
        brokers: z.array(z.string().min(1)).min(1).meta({ description: 'Bootstrap brokers, host:port' }),
        client_id: z.string().optional().meta({ description: 'Default edge-agent-<gateway id>' }),
        topic_prefix: z.string().default('edge.').meta({ description: 'Prefix of every topic the agent writes' }),
        topics: z
          .partialRecord(z.enum(EVENT_KINDS), z.string().min(1))
          .default({})
          .meta({ description: 'Topic per event kind, after the prefix (default: the kind name, e.g. edge.anomaly)' }),
        create_topics: z
          .int()
          .min(0)
          .default(3)
          .meta({ description: 'Create missing topics with this many partitions (0: never create; they must exist)' }),
        topic_settings: z
          .strictObject({
            retention: duration.prefault('720h').meta({
              description:
                'retention.ms of the event topics the agent creates. Counted from the record timestamp, which is the event time: it must be longer than the longest offline period plus the replay window, or a backlog is deleted by the broker right after it arrived',
            }),
            replication_factor: z
              .int()
              .min(-1)
              .default(-1)
              .meta({ description: "Replication factor of created topics (-1: the broker's default.replication.factor)" }),
          })
          .prefault({})
          .meta({
            description:
              'Settings of the topics the agent creates: event topics cleanup.policy=delete with this retention, the twin topic cleanup.policy=compact (keyed <gateway_id>/<asset>). Existing topics are never altered; the agent warns when they differ',
          }),
        transactional_id: z.string().optional().meta({
          description:
            'Stable transactional id (default edge-agent-<gateway id>). Must be unique per gateway and never change: it is how the agent learns after a restart what Kafka already has',
        }),
        compression: z.enum(['none', 'gzip', 'snappy', 'lz4']).default('gzip'),
        nice: z.int().min(0).max(19).default(19).meta({
          description:
            "Nice value of the sync process (0: the agent's own priority, 19: lowest). Under CPU contention detection and stops go first; a loaded gateway drains slower, an idle one as fast (docs/sync.md)",
        }),
        yield_to_detection: z.boolean().default(true).meta({
          description:
            "While a backlog drains, pause between the parts of a page whenever the agent's event loop (readings → stops) is delayed more than when nothing drains (docs/sync.md). false: drain at full speed",
        }),
        headers: z.boolean().default(true).meta({
          description:
            'Identity headers on every record (gateway_id, store_id, seq, boot_id, kind, schema_version, replay; docs/events.md). The value carries the same fields; false drains about a third faster (docs/sync.md)',
        }),
        batch_max_events: z.int().min(1).max(100_000).default(20_000).meta({
          description:
            "Events per Kafka transaction (a page). Record batches inside it are cut below the topics' max.message.bytes",
        }),
        batch_max_bytes: byteSize.prefault('8MB').meta({ description: 'Payload bytes per Kafka transaction (a page)' }),
        linger: duration.prefault('200ms').meta({ description: 'Longest a partly filled batch waits for more events' }),
        max_rate: byteSize
          .prefault(0)
          .meta({ description: 'Drain-rate cap in payload bytes per second for thin uplinks (0: none)' }),
        request_timeout: duration.prefault('30s'),
        retry_max: duration.prefault('30s').meta({ description: 'Longest backoff between failed sends (with jitter)' }),
        tls: z
          .strictObject({
            ca_file: z.string().optional(),
            cert_file: z.string().optional(),
            key_file: z.string().optional(),
            reject_unauthorized: z.boolean().default(true),
          })
          .optional()
          .meta({ description: 'TLS to the brokers (omit for plaintext)' }),
        sasl: z
          .strictObject({
            mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
            username: z.string().min(1),
            password: z.string().optional().meta({
              description:
                'Take it from the environment (EDGE_KAFKA_PASSWORD substituted into the file), never write it in the file. Unset: the variable EDGE_KAFKA_PASSWORD is read at start',
            }),
          })
          .optional(),
      })
      .optional()
      .meta({ description: 'Kafka sync of the event store (omit to buffer only)' }),
  })
  .prefault({});

export const interlockSchema = z.strictObject({
  asset: id,
  actions: z
    .array(
      z.strictObject({
        actuator: id,
        command: z.string().default('stop'),
        release: z.string().optional().meta({
          description: 'Command sent when an operator acknowledges the trip (e.g. clear the stop coil); none by default',
        }),
      }),
    )
    .min(1)
    .meta({ description: 'Run in this order when the asset trips' }),
  reassert_every: duration
    .prefault('5s')
    .meta({ description: 'While the trip is latched and not acknowledged, send the stop actions again this often; 0 disables' }),
  debounce: z
    .strictObject({
      readings: z
        .int()
        .min(1)
        .default(1)
        .meta({ description: 'Trip only after this many consecutive readings with the tripping anomaly raised' }),
      duration: duration
        .prefault('0ms')
        .meta({ description: 'Trip only once the anomaly has stayed raised this long (event time); both conditions must hold' }),
    })
    .prefault({})
    .meta({ description: 'Filters a single noisy reading. The default trips on the first raised reading' }),
  cooldown: duration.prefault('0ms').meta({
    description:
      'After an acknowledgement, trips are suppressed (and audited as such) for this long, e.g. a start-up transient. 0: never suppressed',
  }),
  rate_limit: z
    .strictObject({
      max_trips: z.int().min(1),
      per: duration,
    })
    .optional()
    .meta({
      description: 'At most max_trips trips per sliding window; further trips are suppressed, audited and logged as errors',
    }),
  dry_run: z.boolean().default(false).meta({
    description: 'Commissioning: decide, latch and audit what would have been sent, but send nothing to the actuators',
  }),
  reset: z.enum(['refuse', 'when_clear']).default('refuse').meta({
    description:
      'An acknowledgement while a tripping condition still holds (a tripping detector raised, a watched sensor silent, bad or unread since start): refuse: refused (API 409, CLI non-zero, MQTT answer) and audited; when_clear: recorded, and the asset is released by itself once every condition has cleared',
  }),
  fail_safe: z
    .strictObject({
      policy: z.enum(['none', 'alarm', 'stop']).default('stop').meta({
        description:
          'When a watched sensor goes silent or bad: trip the asset (stop), or only raise an alarm event (alarm; edge-agent validate warns about every tripping detector it weakens)',
      }),
      silent_after: duration.prefault('30s').meta({ description: 'A watched sensor with no reading for this long is silent' }),
      bad_readings: z
        .int()
        .min(1)
        .default(3)
        .meta({ description: 'Consecutive readings of quality bad or comm_error that make a watched sensor bad' }),
      sensors: z
        .array(id)
        .optional()
        .meta({ description: 'Sensors of the asset to watch; default: those read by its tripping detectors' }),
    })
    .prefault({}),
});

export type SensorConfig = z.output<typeof sensorSchema>;
export type AssetConfig = z.output<typeof assetSchema>;
export type TimeConfig = z.output<typeof timeSchema>;
export type CaptureConfig = z.output<typeof captureSchema>;
export type InterlockConfig = z.output<typeof interlockSchema>;
export type DriverEntry = z.output<typeof driverEntrySchema>;
export type SyncConfig = z.output<typeof syncSchema>;
export type StoreConfig = z.output<typeof storeSchema>;
export type ApiConfig = z.output<typeof apiSchema>;
export type TwinConfig = z.output<typeof twinSchema>;
