/**
 * Checks of the core sections that need the whole config: references between sections and
 * duplicate ids. The detection sections' checks come from their owners (agent/schema.ts).
 */
import { controlChecks } from '../control/params.js';
import { apiProblems } from '../ops/api.js';
import type { SemanticProblem } from './primitives.js';
import type { AgentConfig } from './schema.js';

export type { SemanticProblem };

export function semanticChecks(config: AgentConfig): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const dupes = (section: string, ids: readonly string[], prefix: (string | number)[] = []): Set<string> => {
    const seen = new Set<string>();
    ids.forEach((id, i) => {
      if (seen.has(id)) problems.push({ path: [...prefix, section, i, 'id'], message: `duplicate id "${id}"` });
      seen.add(id);
    });
    return seen;
  };
  const sources = dupes(
    'sources',
    config.sources.map((s) => s.id),
  );
  const actuators = dupes(
    'actuators',
    config.actuators.map((a) => a.id),
  );
  const assets = dupes(
    'assets',
    config.assets.map((a) => a.id),
  );
  dupes(
    'detectors',
    config.detectors.map((d) => d.id),
  );

  const sensorsOf = new Map<string, Set<string>>();
  config.assets.forEach((asset, ai) => {
    sensorsOf.set(
      asset.id,
      dupes(
        'sensors',
        asset.sensors.map((s) => s.id),
        ['assets', ai],
      ),
    );
    asset.sensors.forEach((sensor, si) => {
      if (!sources.has(sensor.source)) {
        problems.push({
          path: ['assets', ai, 'sensors', si, 'source'],
          message: `unknown source "${sensor.source}"`,
          hint: `defined sources: ${[...sources].join(', ') || 'none'}`,
        });
      }
      if (sensor.min !== undefined && sensor.max !== undefined && sensor.min >= sensor.max) {
        problems.push({ path: ['assets', ai, 'sensors', si, 'min'], message: 'min must be below max' });
      }
    });
  });

  problems.push(...controlChecks(config));

  const interlocked = new Set<string>();
  config.interlocks.forEach((il, i) => {
    if (!assets.has(il.asset)) problems.push({ path: ['interlocks', i, 'asset'], message: `unknown asset "${il.asset}"` });
    if (interlocked.has(il.asset))
      problems.push({
        path: ['interlocks', i, 'asset'],
        message: `asset "${il.asset}" has two interlocks`,
        hint: 'list all its actions in one',
      });
    interlocked.add(il.asset);
    const ownSensors = sensorsOf.get(il.asset);
    il.fail_safe.sensors?.forEach((sensor, j) => {
      if (ownSensors && !ownSensors.has(sensor))
        problems.push({
          path: ['interlocks', i, 'fail_safe', 'sensors', j],
          message: `asset "${il.asset}" has no sensor "${sensor}"`,
          hint: `its sensors: ${[...ownSensors].join(', ')}`,
        });
    });
    il.actions.forEach((a, j) => {
      if (!actuators.has(a.actuator)) {
        problems.push({
          path: ['interlocks', i, 'actions', j, 'actuator'],
          message: `unknown actuator "${a.actuator}"`,
          hint: `defined actuators: ${[...actuators].join(', ') || 'none'}`,
        });
        return;
      }
      // Actuators that name their commands (modbus-write, exec) must know the ones the interlock sends.
      const commands = (config.actuators.find((x) => x.id === a.actuator) as { commands?: unknown } | undefined)?.commands;
      if (!commands || typeof commands !== 'object') return;
      for (const key of ['command', 'release'] as const) {
        const name = a[key];
        if (name !== undefined && !Object.hasOwn(commands, name))
          problems.push({
            path: ['interlocks', i, 'actions', j, key],
            message: `actuator "${a.actuator}" has no command "${name}"`,
            hint: `its commands: ${Object.keys(commands).join(', ')}`,
          });
      }
    });
  });
  problems.push(...apiProblems(config.api));
  // Two sources opening one serial port would garble each other's frames on the bus.
  const serialPorts = new Map<string, string>();
  config.sources.forEach((src, i) => {
    const port = (src as { serial_port?: unknown }).serial_port;
    if (typeof port !== 'string') return;
    const other = serialPorts.get(port);
    if (other) {
      problems.push({
        path: ['sources', i, 'serial_port'],
        message: `serial port ${port} is already used by source "${other}"`,
        hint: 'put every unit on one bus under one source',
      });
    }
    serialPorts.set(port, src.id);
  });
  if (config.control.kafka && !config.sync.kafka)
    problems.push({
      path: ['control', 'kafka'],
      message: 'the Kafka control topic needs sync.kafka (brokers and security are taken from there)',
    });
  return problems;
}

/**
 * Not errors, but places where the config weakens protection: `edge-agent validate` prints them (exit 0)
 * and `edge-agent run` logs them at start. One per tripping detector whose sensor, when it goes silent
 * or bad, would only raise an alarm, and per sensor of a tripping detector whose out-of-range readings
 * cannot trip (`range_trip: false`, or no min/max on the watched side).
 */
export function safetyWarnings(config: AgentConfig): SemanticProblem[] {
  const out: SemanticProblem[] = [];
  config.detectors.forEach((d, i) => {
    if (!d.trip) return;
    const il = config.interlocks.find((x) => x.asset === d.asset);
    const il_i = config.interlocks.findIndex((x) => x.asset === d.asset);
    const sensors = 'sensors' in d ? d.sensors : [d.sensor];
    if (il && il.fail_safe.policy !== 'stop')
      out.push({
        path: ['interlocks', il_i, 'fail_safe', 'policy'],
        message: `tripping detector "${d.id}" reads ${sensors.join(', ')}; if ${sensors.length > 1 ? 'one' : 'it'} goes silent or bad, fail_safe.policy "${il.fail_safe.policy}" only ${il.fail_safe.policy === 'none' ? 'ignores it' : 'raises an alarm'} instead of stopping "${d.asset}"`,
        hint: 'remove fail_safe.policy (default stop), or accept that a blind interlock keeps the machine running',
      });
    const asset = config.assets.find((a) => a.id === d.asset);
    for (const s of sensors) {
      const cfg = asset?.sensors.find((x) => x.id === s);
      if (cfg?.range_trip === false)
        out.push({
          path: ['detectors', i, 'sensor'],
          message: `tripping detector "${d.id}": sensor "${s}" has range_trip: false; a reading past its range only alarms`,
          hint: 'remove range_trip: false unless the sensor saturates inside its range',
        });
    }
  });
  return out;
}
