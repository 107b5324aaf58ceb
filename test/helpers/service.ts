import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import { Service } from '../../agent/ops/service.js';

/** The API token of `apiConfigYaml`. */
export const TOKEN = 'test-token-0123456789';

/** Two pumps on the simulator; pump-1 overheats from 300 ms (+10 degC/s) and trips at 95 degC. */
export const apiConfigYaml = (db: string, token = TOKEN, extra = '') => `
gateway: { id: gw-test }
store: { path: ${db}, flush_interval: 50ms }
log: { level: silent }
aggregation: { window: 1s }
api: { listen: '127.0.0.1:0', token: '${token}' }
twin: { interval: 1s, history: 1m }
sources:
  - id: sim
    type: simulator
    seed: 5
    rate: 50
    tick: 20ms
    faults:
      - { asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 300ms, duration: 10m, magnitude: 6000 }
assets:
  - id: pump-1
    name: Pump one
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
      - { id: pressure, metric: pressure, unit: bar, source: sim }
  - id: pump-2
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
  - { id: p2-hot, type: threshold, asset: pump-2, sensor: temperature, setpoint: 150, severity: warning }
actuators:
  - { id: log-stop, type: log }
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
${extra}`;

/** Runs the service in this process (no systemd, no signals) with its API on a free port. The caller stops it. */
export async function startService(
  yaml: string,
  file = 'test.yaml',
  env: NodeJS.ProcessEnv = {},
): Promise<{ service: Service; base: string }> {
  const res = await parseConfig(yaml, file);
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const service = new Service(res.config, file, pino({ level: 'silent' }), env);
  try {
    await service.start();
  } catch (err) {
    await service.stop();
    throw err;
  }
  const addr = service.apiAddress;
  if (!addr) {
    await service.stop();
    throw new Error('API did not start');
  }
  return { service, base: `http://127.0.0.1:${addr.port}` };
}
