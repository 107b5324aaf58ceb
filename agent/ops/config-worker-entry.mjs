// Worker threads start as plain Node: register the TypeScript loader, then load the config.
import { register } from 'tsx/esm/api';

register();
await import('./config-worker.ts');
