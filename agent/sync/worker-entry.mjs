// Worker threads start as plain Node: register the TypeScript loader, then run the syncer.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
