#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx's loader (no build step on the gateway).
import { register } from 'tsx/esm/api';

register();
await import('../agent/cli.ts');
