/**
 * Writes pump.csv: one synthetic day of a pump at one reading a minute (temp, flow, label), made up
 * here, not taken from any data set. A load change at 08:00 raises temperature and flow for good (a
 * new operating level, not a fault); from 15:00 a bearing fault heats the pump by 0.1 °C a minute
 * for 40 minutes (label 1); a stuck flow transmitter repeats one value from 20:00 to 20:30.
 *   npx tsx examples/backtest/generate.ts > examples/backtest/pump.csv
 */
let seed = 42;
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff - 0.5;
};
const t0 = Date.UTC(2026, 2, 2);
const lines = ['timestamp,temp,flow,label'];
let stuck = 0;
for (let i = 0; i < 1440; i++) {
  const load = i >= 480 ? 1 : 0;
  const fault = i >= 900 && i < 940 ? (i - 900) * 0.1 + 2 : 0;
  const temp = 60 + 6 * load + 0.6 * Math.sin(i / 10) + 0.4 * rand() + fault;
  let flow = 30 + 8 * load + 0.8 * rand();
  if (i === 1200) stuck = flow;
  if (i >= 1200 && i < 1230) flow = stuck;
  const ts = new Date(t0 + 60_000 * i).toISOString().replace('T', ' ').slice(0, 19);
  lines.push(`${ts},${temp.toFixed(2)},${flow.toFixed(2)},${fault > 0 ? 1 : 0}`);
}
process.stdout.write(`${lines.join('\n')}\n`);
