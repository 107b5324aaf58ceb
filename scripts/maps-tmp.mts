import { parseConfig } from '../agent/config/load.js';
import { scaleConfig } from './bench/scale.js';

const n = Number(process.argv[2] ?? 2000);
const yaml = scaleConfig({ sensors: n, mqttPort: 1, apiPort: 2, dbPath: '/nonexistent/x.db', prefix: 'p' });
const res = await parseConfig(yaml, 'x.yaml');
if (!res.ok) throw new Error('bad');
const f = new Function('a', 'b', 'return %HaveSameMap(a, b)');
const fast = new Function('a', 'return %HasFastProperties(a)');
const count = (xs: object[]) => {
  const reps: object[] = [];
  for (const x of xs) if (!reps.some((r) => f(r, x))) reps.push(x);
  return reps.length;
};
const ss = res.config.assets.map((a) => a.sensors[0]!);
console.log(
  'parsed sensors maps',
  count(ss),
  'fast',
  ss.every((x) => fast(x)),
);
const bs = res.config.assets.flatMap((a, i) => a.sensors.map((s) => ({ ...s, asset: a.id, slot: i })));
console.log(
  'bound maps',
  count(bs),
  'fast',
  bs.every((x) => fast(x)),
);
console.log(
  'assets maps',
  count(res.config.assets as object[]),
  'detectors',
  count(res.config.detectors as object[]),
  'interlocks',
  count(res.config.interlocks as object[]),
);
