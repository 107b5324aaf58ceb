// Diagnosis only (scale-prof with SCALE_TRACE=1), preloaded with `node --import` into the system under test
// and the load generator: where a trip's time goes between the processes. It notes, on the monotonic clock
// (the same in every process), each socket chunk read or written that holds a tripping reading (the
// burst value) or a stop command, by asset; and, in the process that sends stops, how long its event loop
// stayed busy after each stop was written (until its next setImmediate), and its garbage collection pauses. Written as JSON to
// $SCALE_TRACE_DIR/<script>-<pid>.json at exit and every second.
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { basename, join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';

const dir = process.env.SCALE_TRACE_DIR;
const burst = `"value":${Number(process.env.SCALE_TRACE_BURST ?? 150).toFixed(3)}`;
const mono = () => Number(process.hrtime.bigint() / 1000n);
/** [asset, 'in-reading' | 'out-reading' | 'in-stop' | 'out-stop', µs] */
const marks = [];
/** µs the event loop stayed busy after a stop was written */
const busyAfterStop = [];
/** [start µs, duration µs] of each garbage collection pause of this thread */
const gc = [];

function scan(s, dirn) {
  let i = s.indexOf(burst);
  while (i >= 0) {
    const m = /\/([^/]+)\/temperature[^/]*$/.exec(s.slice(Math.max(0, i - 200), i));
    if (m) marks.push([m[1], `${dirn}-reading`, mono()]);
    i = s.indexOf(burst, i + 1);
  }
  if (!s.includes('/command')) return false;
  for (const m of s.matchAll(/\/([^/]+)\/command/g)) marks.push([m[1], `${dirn}-stop`, mono()]);
  return true;
}

const text = (c) => (Buffer.isBuffer(c) ? c.latin1Slice(0, c.length) : String(c));
if (dir) {
  // A consumer that reads the socket itself (the agent's MQTT source frames its own PUBLISHes) sets its own
  // `push` on the socket, in front of Readable's: wrap whatever is set there so that its reads are seen too.
  Object.defineProperty(net.Socket.prototype, 'push', {
    configurable: true,
    get() {
      return this.__tracePush ?? Readable.prototype.push;
    },
    set(fn) {
      this.__tracePush = function (chunk, enc) {
        if (chunk?.length) scan(text(chunk), 'in');
        return fn.call(this, chunk, enc);
      };
    },
  });
  const pushOf = Readable.prototype.push;
  Readable.prototype.push = function (chunk, enc) {
    // Reads that went through a wrapped push were seen there already.
    if (this instanceof net.Socket && !this.__tracePush && chunk?.length) scan(text(chunk), 'in');
    return pushOf.call(this, chunk, enc);
  };
  for (const name of ['_writev', '_write']) {
    const write = net.Socket.prototype[name];
    net.Socket.prototype[name] = function (...a) {
      const data = name === '_writev' ? a[0].map((x) => text(x.chunk)).join('') : text(a[0]);
      if (scan(data, 'out')) {
        const at = mono();
        setImmediate(() => busyAfterStop.push(mono() - at));
      }
      return write.apply(this, a);
    };
  }
  // performance.now() counts from timeOrigin; this maps it onto the monotonic clock of the marks.
  const offset = mono() - performance.now() * 1000;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.push([Math.round(offset + e.startTime * 1000), Math.round(e.duration * 1000)]);
  }).observe({ entryTypes: ['gc'] });
  const file = join(dir, `${basename(process.argv[1] ?? 'node')}-${process.pid}.json`);
  const dump = () => {
    if (marks.length > 0) writeFileSync(file, JSON.stringify({ marks, busyAfterStop, gc }));
  };
  process.on('exit', dump);
  setInterval(dump, 1000).unref();
}
