/**
 * The body of the config-loading worker (see load-config.ts): parses and validates one config file and
 * posts the result back. Its isolate, with every transient object of the YAML document, is discarded
 * when it exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfigFile } from '../config/load.js';

const { file, env } = workerData as { file: string; env: NodeJS.ProcessEnv };
parentPort?.postMessage(await loadConfigFile(file, env));
