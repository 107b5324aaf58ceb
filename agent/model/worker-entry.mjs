// Worker threads start as plain Node: register the TypeScript loader, then run the model host.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
