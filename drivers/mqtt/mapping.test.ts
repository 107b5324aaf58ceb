import { describe, expect, it } from 'vitest';
import { compileFilter, compileSubscription, type MapResult, parsePath, parseTime } from './mapping.js';
import { subscriptionSchema } from './schema.js';

const sub = (o: Record<string, unknown>) => compileSubscription(subscriptionSchema.parse(o));
const run = (o: Record<string, unknown>, topic: string, payload: string | Buffer, arrival = 1_700_000_000_000): MapResult => {
  const out: MapResult = { values: [], errors: [] };
  sub(o).map(topic.split('/'), Buffer.isBuffer(payload) ? payload : Buffer.from(payload), arrival, out);
  return out;
};

describe('topic filters', () => {
  it('matches + and # like a broker', () => {
    const m = compileFilter('plant/+/+/telemetry');
    expect(m('plant/pump-1/temp/telemetry'.split('/'))).toBe(true);
    expect(m('plant/pump-1/telemetry'.split('/'))).toBe(false);
    const h = compileFilter('plant/#');
    expect(h('plant/a/b/c'.split('/'))).toBe(true);
    expect(h(['plant'])).toBe(true);
    expect(h(['other', 'a'])).toBe(false);
  });
});

describe('payload mapping', () => {
  it('takes asset and sensor from topic levels and the value from a JSON path, time from epoch ms', () => {
    const r = run(
      { topic: 'plant/+/+', asset_segment: 1, sensor_segment: 2, value_path: 'data.v', time_path: 'ts' },
      'plant/pump-1/temperature',
      '{"data":{"v":21.5},"ts":1700000001234}',
    );
    expect(r).toEqual({
      values: [{ asset: 'pump-1', sensor: 'temperature', value: 21.5, eventTime: 1_700_000_001_234 }],
      errors: [],
    });
  });

  it('reads arrays of readings with per-item sensor ids and ISO times, keeping the valid items', () => {
    const r = run(
      {
        topic: 'gw/+',
        asset_segment: 1,
        items_path: 'readings',
        sensor_path: 'id',
        value_path: 'v',
        time_path: 't',
        time_format: 'iso',
      },
      'gw/pump-2',
      JSON.stringify({
        readings: [
          { id: 'temperature', v: 20, t: '2026-01-01T00:00:00Z' },
          { id: 'pressure', v: 'x', t: '2026-01-01T00:00:00Z' },
          { id: 'pressure', v: 6.1, t: 'yesterday' },
          { id: '../etc', v: 1, t: '2026-01-01T00:00:00Z' },
          { id: 'running', v: true, t: '2026-01-01T00:00:01Z' },
        ],
      }),
    );
    expect(r.values).toEqual([
      { asset: 'pump-2', sensor: 'temperature', value: 20, eventTime: Date.UTC(2026, 0, 1) },
      { asset: 'pump-2', sensor: 'running', value: 1, eventTime: Date.UTC(2026, 0, 1, 0, 0, 1) },
    ]);
    expect(r.errors).toEqual(['bad_value', 'bad_time', 'bad_id']);
  });

  it('maps several fields of one object to several sensors, with epoch seconds', () => {
    const r = run(
      {
        topic: 'm/1',
        asset: 'pump-3',
        fields: { temperature: 'temp', pressure: 'p.bar' },
        time_path: 'ts',
        time_format: 'epoch_s',
      },
      'm/1',
      '{"temp":70.5,"p":{"bar":5.5},"ts":1700000000}',
    );
    expect(r.values.map((v) => [v.sensor, v.value, v.eventTime])).toEqual([
      ['temperature', 70.5, 1_700_000_000_000],
      ['pressure', 5.5, 1_700_000_000_000],
    ]);
  });

  it('reads a plain number payload at arrival time', () => {
    expect(run({ topic: 's/+', format: 'number', asset: 'a', sensor_segment: 1 }, 's/level', ' 12.5e1 \n').values).toEqual([
      { asset: 'a', sensor: 'level', value: 125, eventTime: 1_700_000_000_000 },
    ]);
    expect(run({ topic: 's/+', format: 'number', asset: 'a', sensor_segment: 1 }, 's/level', '12abc').errors).toEqual([
      'not_number',
    ]);
  });

  it('names what is wrong with malformed payloads and never throws', () => {
    const o = { topic: 'x', asset: 'a', sensor: 's', time_path: 'ts' };
    expect(run(o, 'x', '{"value":1').errors).toEqual(['not_json']);
    expect(run(o, 'x', Buffer.from([0xff, 0xfe, 0x00])).errors).toEqual(['not_json']);
    expect(run(o, 'x', '"hello"').errors).toEqual(['bad_value']);
    expect(run(o, 'x', '[]').errors).toEqual(['no_items']);
    expect(run(o, 'x', '{"value":null,"ts":1700000000000}').errors).toEqual(['bad_value']);
    expect(run(o, 'x', '{"value":1,"ts":12}').errors).toEqual(['bad_time']);
    expect(run(o, 'x', '{"__proto__":{"value":1},"ts":1700000000000}').errors).toEqual(['bad_value']);
    expect(run(o, 'x', `${'['.repeat(100_000)}${']'.repeat(100_000)}`).errors.length).toBeGreaterThan(0);
  });
});

describe('one value per message (the per-topic fast path of the source)', () => {
  it('gives what map gives, for good and malformed messages', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2, time_path: 'ts' }, 'p/a1/t', '{"value":51.5,"ts":1700000000123}'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2, time_path: 'ts' }, 'p/a1/t', '{"value":1,"ts":12}'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 }, 'p/a1/t', '{"value":true}'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 }, 'p/a1/t', '{"value":"7"}'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 }, 'p/a1/t', '{"value":1'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 }, 'p/a1/t', '"hello"'],
      [{ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 }, 'p/a1/t', 'null'],
      [{ topic: 'x', asset: 'a', sensor: 's', value_path: 'd.v[1]' }, 'x', '{"d":{"v":[0,3.5]}}'],
      [{ topic: 's/+', format: 'number', asset: 'a', sensor_segment: 1 }, 's/level', ' 12.5e1 \n'],
      [{ topic: 's/+', format: 'number', asset: 'a', sensor_segment: 1 }, 's/level', '12abc'],
      // Inherited properties are never a value or a time.
      [{ topic: 'x', asset: 'a', sensor: 's', value_path: 'toString' }, 'x', '{"value":1}'],
      [{ topic: 'x', asset: 'a', sensor: 's', value_path: '__proto__' }, 'x', '{"value":1}'],
      [{ topic: 'x', asset: 'a', sensor: 's', time_path: 'constructor' }, 'x', '{"value":1}'],
      [
        { topic: 'x', asset: 'a', sensor: 's', time_path: 'ts', time_format: 'iso' },
        'x',
        '{"value":1,"ts":"2024-05-01T00:00:00Z"}',
      ],
      [{ topic: 'x', asset: 'a', sensor: 's' }, 'x', '{"__proto__":{"value":1}}'],
    ];
    for (const [o, topic, payload] of cases) {
      const s = sub(o);
      const ids = s.topicIds(topic.split('/'));
      expect(typeof ids, JSON.stringify(o)).toBe('object');
      const one = { value: Number.NaN, eventTime: Number.NaN };
      const res = s.single(Buffer.from(payload), 1_700_000_000_000, one);
      const full = run(o, topic, payload);
      if (res === undefined) {
        expect(full.errors).toEqual([]);
        expect(full.values).toEqual([{ ...(ids as object), value: one.value, eventTime: one.eventTime }]);
      } else expect(full.errors, payload).toEqual([res]);
    }
  });

  it('reads flat objects of numbers from the bytes exactly as JSON.parse reads them', () => {
    const o = { topic: 'p/+/+', asset_segment: 1, sensor_segment: 2, time_path: 'ts' };
    const payloads = [
      '{"value":50.123,"ts":1767225600000}',
      ' {\t"ts" : 1767225600000 ,\n"value": -0 }\r\n',
      '{"value":-0.5,"ts":1767225600000}',
      '{"value":0,"ts":1767225600000,"other":12.5}',
      '{"value":1,"value":2,"ts":1767225600000}',
      '{"value":123456789012345,"ts":1767225600000}',
      '{"value":1234567890123456789,"ts":1767225600000}',
      '{"value":0.1234567890123456789,"ts":1767225600000}',
      '{"value":1e3,"ts":1767225600000}',
      '{"value":1E-3,"ts":1767225600000}',
      '{"value":01,"ts":1767225600000}',
      '{"value":1.,"ts":1767225600000}',
      '{"value":.5,"ts":1767225600000}',
      '{"value":+1,"ts":1767225600000}',
      '{"value":-,"ts":1767225600000}',
      '{"value":1,"ts":1767225600000,}',
      '{"value":1 "ts":1767225600000}',
      '{"value":1,"ts":1767225600000}x',
      '{"value":1,"ts":1767225600000',
      '{"val\\u0075e":7,"ts":1767225600000}',
      '{"value":7,"t\u00e9":1,"ts":1767225600000}',
      '{"value":true,"ts":1767225600000}',
      '{"value":null,"ts":1767225600000}',
      '{"value":7,"ts":"1767225600000"}',
      '{"value":7,"note":"x","ts":1767225600000}',
      '{"value":7,"d":{"a":1},"ts":1767225600000}',
      '{"value":7}',
      '{"ts":1767225600000}',
      '{"value":7,"ts":12}',
      '{}',
      '\ufeff{"value":7,"ts":1767225600000}',
    ];
    // and many random decimals of the generators' shape
    for (let i = 0; i < 2000; i++) {
      const v = (Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 12);
      payloads.push(`{"value":${v.toFixed(Math.floor(Math.random() * 8))},"ts":${1767225600000 + i}}`);
      payloads.push(`{"value":${v},"ts":${1767225600000 + i}}`);
    }
    const s = sub(o);
    const ids = s.topicIds(['p', 'a1', 't']);
    for (const payload of payloads) {
      const one = { value: Number.NaN, eventTime: Number.NaN };
      const res = s.single(Buffer.from(payload), 1_700_000_000_000, one);
      const full = run(o, 'p/a1/t', payload);
      if (res === undefined) {
        expect(full.errors, payload).toEqual([]);
        expect(full.values, payload).toEqual([{ ...(ids as object), value: one.value, eventTime: one.eventTime }]);
        const v = JSON.parse(payload).value;
        if (typeof v === 'number') expect(Object.is(one.value, v), payload).toBe(true);
      } else expect(full.errors, payload).toEqual([res]);
    }
  });

  it('leaves arrays to map, and has no topic ids when the payload names the sensor or the level is not an id', () => {
    const s = sub({ topic: 'p/+/+', asset_segment: 1, sensor_segment: 2 });
    expect(s.single(Buffer.from('[{"value":1},{"value":2}]'), 0, { value: 0, eventTime: 0 })).toBeNull();
    expect(s.topicIds('p/a b/t'.split('/'))).toBe('bad_id');
    expect(sub({ topic: 'p/+', asset_segment: 1, sensor_path: 'id' }).topicIds(['p', 'a'])).toBeUndefined();
    expect(sub({ topic: 'p/+', asset_segment: 1, fields: { t: 'temp' } }).topicIds(['p', 'a'])).toBeUndefined();
  });
});

describe('paths and times', () => {
  it('parses dotted and bracketed paths', () => {
    expect(parsePath('a.b[2].c')).toEqual(['a', 'b', 2, 'c']);
    expect(parsePath('values.0')).toEqual(['values', 0]);
  });
  it('rejects implausible times', () => {
    expect(parseTime(1_700_000_000, 'epoch_ms')).toBeUndefined();
    expect(parseTime(1_700_000_000, 'epoch_s')).toBe(1_700_000_000_000);
    expect(parseTime('2026-01-01T00:00:00.5Z', 'iso')).toBe(Date.UTC(2026, 0, 1) + 500);
  });
  it('requires exactly one way to find the asset and the sensor', () => {
    expect(subscriptionSchema.safeParse({ topic: 'x', asset: 'a', asset_segment: 1, sensor: 's' }).success).toBe(false);
    expect(subscriptionSchema.safeParse({ topic: 'x', asset: 'a' }).success).toBe(false);
  });
});
