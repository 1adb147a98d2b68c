// The agent's envelope sequence numbers must keep increasing across restarts, or peers that
// remember its last sequence number would take its new envelopes for replays. A hi/lo allocator:
// a high-water mark is stored (fsynced) before any number below it is used, a block at a time, so a
// restart, even after a crash or with the clock set back, resumes above every number ever sent.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ClusterError } from './errors.ts'

export const SEQUENCE_FILE = 'envelope-seq'
/** Numbers reserved per write: one fsync per ~1M envelopes. */
export const SEQUENCE_BLOCK = 1 << 20

export class SequenceAllocator {
  private last: number
  private reserved: number

  private constructor(
    private readonly path: string,
    start: number
  ) {
    this.last = start
    this.reserved = start
  }

  /** Opens `<dir>/envelope-seq` (the directory must exist); numbers continue above the stored mark. */
  static open(dir: string): SequenceAllocator {
    const path = join(dir, SEQUENCE_FILE)
    let mark = 0
    try {
      const text = readFileSync(path, 'utf8').trim()
      mark = Number(text)
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(mark)) {
        throw new ClusterError('bad_sequence_file', `${path} does not hold a sequence number`)
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    return new SequenceAllocator(path, mark)
  }

  /** The next sequence number; stores a new mark first when the reserved block is used up. */
  next(): number {
    if (this.last >= this.reserved) this.reserve(this.last + SEQUENCE_BLOCK)
    return ++this.last
  }

  private reserve(mark: number): void {
    const tmp = `${this.path}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, `${mark}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.path)
    // The rename itself must be durable too, or a crash could bring back the previous mark.
    const dir = openSync(dirname(this.path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
    this.reserved = mark
  }
}
