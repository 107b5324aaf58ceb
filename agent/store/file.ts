/**
 * Checks on the store file before anything opens it: a corrupt file is quarantined (renamed with a
 * timestamp, with its -wal and -shm) so a fresh store can start and the machines stay protected
 * (field note 9), and a store on tmpfs/ramfs is reported because a reboot erases it (field note 4).
 */
import { existsSync, renameSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

export interface StoreFileCheck {
  /** Where the corrupt file was moved, when it was. */
  readonly quarantined?: string;
  /** Why it was judged corrupt. */
  readonly reason?: string;
  /** The store's directory is on tmpfs or ramfs. */
  readonly volatile: boolean;
}

const CORRUPT_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_VTAB', 'SQLITE_CORRUPT_SEQUENCE']);

export function isCorruption(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return CORRUPT_CODES.has(code) || code.startsWith('SQLITE_CORRUPT');
}

export function onVolatileFs(path: string): boolean {
  try {
    const { type } = statfsSync(dirname(resolve(path)));
    return type === TMPFS_MAGIC || type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/** Renames `path` (and its WAL/SHM) to `<path>.corrupt-<ISO time>`; returns the new name. */
export function quarantine(path: string, at = new Date()): string {
  const target = `${path}.corrupt-${at.toISOString().replace(/[:.]/g, '-')}`;
  for (const suffix of ['-wal', '-shm', '-journal']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
  }
  renameSync(path, target);
  return target;
}

/**
 * Opens the existing store file (if any), runs `quick_check` when asked, and quarantines it when it
 * is not a database or is damaged. I/O errors that are not corruption (disk full, permissions) are
 * left to the store, which buffers in memory and retries.
 */
export function checkStoreFile(path: string, mode: 'quick' | 'none'): StoreFileCheck {
  if (path === ':memory:') return { volatile: false };
  const volatile = onVolatileFs(path);
  if (!existsSync(path)) return { volatile };
  let reason: string | undefined;
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      db.pragma('schema_version');
      if (mode === 'quick') {
        const rows = db.pragma('quick_check(5)') as Array<{ quick_check: string }>;
        if (rows[0]?.quick_check !== 'ok') reason = rows.map((r) => r.quick_check).join('; ');
      }
    } finally {
      db.close();
    }
  } catch (err) {
    if (!isCorruption(err)) return { volatile };
    reason = (err as Error).message;
  }
  if (reason === undefined) return { volatile };
  return { quarantined: quarantine(path), reason, volatile };
}
