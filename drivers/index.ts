/**
 * The explicit driver registry: a type name → a lazy import of the driver's module.
 * Adding a driver = a folder under drivers/ plus one line here (a test checks both).
 */
import type { ActuatorModule, DriverModule, SourceModule } from '../agent/driver.js';

const REGISTRY: Record<string, () => Promise<{ default: DriverModule }>> = {
  simulator: () => import('./simulator/index.js'),
  log: () => import('./log/index.js'),
  modbus: () => import('./modbus/index.js'),
  mqtt: () => import('./mqtt/index.js'),
  'modbus-write': () => import('./modbus-write/index.js'),
  'mqtt-publish': () => import('./mqtt-publish/index.js'),
  exec: () => import('./exec/index.js'),
};

export const DRIVER_TYPES: readonly string[] = Object.keys(REGISTRY);

export async function loadDriver(type: string): Promise<DriverModule> {
  const load = REGISTRY[type];
  if (!load) throw new Error(`unknown driver type "${type}"; valid types: ${DRIVER_TYPES.join(', ')}`);
  return (await load()).default;
}

export async function loadSource(type: string): Promise<SourceModule> {
  const mod = await loadDriver(type);
  if (mod.role !== 'source') throw new Error(`driver "${type}" is an actuator, not a source`);
  return mod;
}

export async function loadActuator(type: string): Promise<ActuatorModule> {
  const mod = await loadDriver(type);
  if (mod.role !== 'actuator') throw new Error(`driver "${type}" is a source, not an actuator`);
  return mod;
}
