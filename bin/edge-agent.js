#!/usr/bin/env node
// edge-agent in a checkout. With a current build (`npm run build`), it runs the compiled agent in
// dist/ with plain Node, as a gateway does. Without one, or when a source file is newer than the
// build, it runs the TypeScript sources through tsx (a development dependency) and says so.
// The release bundle and `npm run build` have their own bin/edge-agent.js, which never loads tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.build-stamp');

function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|html|json)$/.test(e.name)) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, 'agent'));
  walk(join(root, 'drivers'));
  return newest;
}

if (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()) {
  await import('../dist/agent/cli.js');
} else {
  if (existsSync(stamp))
    process.stderr.write(
      'edge-agent: dist/ is older than the sources; running the sources through tsx (npm run build to refresh)\n',
    );
  const { register } = await import('tsx/esm/api');
  register();
  await import('../agent/cli.ts');
}
