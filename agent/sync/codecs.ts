/**
 * Compression codecs for kafkajs. gzip is built in; LZ4 (frame format, as Kafka specifies) comes
 * from `lz4-napi` and Snappy from `snappy` (both napi-rs packages with prebuilt binaries, no
 * compiler needed on the gateway). No zstd: the maintained npm bindings need a compiler or a
 * download at install time, which gateways and CI cannot do; kafkajs would throw on zstd batches.
 */
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';

// Not a named export kafkajs's CommonJS build exposes to ESM.
const { CompressionCodecs, CompressionTypes } = kafkajs;

const require = createRequire(import.meta.url);
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);

interface Encoder {
  buffer: Buffer;
}

let registered = false;

/** Registers LZ4 and Snappy with kafkajs (idempotent). */
export function registerCodecs(): void {
  if (registered) return;
  registered = true;
  const lz4 = require('lz4-napi') as typeof import('lz4-napi');
  const snappy = require('snappy') as typeof import('snappy');
  const codecs = CompressionCodecs as unknown as Record<number, () => unknown>;
  codecs[CompressionTypes.LZ4] = () => ({
    compress: (encoder: Encoder) => lz4.compressFrame(encoder.buffer),
    decompress: (buffer: Buffer) => lz4.decompressFrame(buffer),
  });
  codecs[CompressionTypes.Snappy] = () => ({
    compress: (encoder: Encoder) => snappy.compress(encoder.buffer),
    // Java producers write xerial-framed snappy: magic, version, compat, then [length, block]*.
    decompress: async (buffer: Buffer) => {
      if (buffer.length < 16 || !buffer.subarray(0, 8).equals(XERIAL_MAGIC))
        return snappy.uncompress(buffer, { asBuffer: true }) as Promise<Buffer>;
      const parts: Buffer[] = [];
      let at = 16;
      while (at + 4 <= buffer.length) {
        const len = buffer.readUInt32BE(at);
        at += 4;
        parts.push((await snappy.uncompress(buffer.subarray(at, at + len), { asBuffer: true })) as Buffer);
        at += len;
      }
      return Buffer.concat(parts);
    },
  });
}

export const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
} as const;
