// Where the virtual node's durable records live. The machine only needs append-then-confirm and a
// replay at start; the audit core (Hypercore) will implement the same interface. Until then: an
// in-memory store for tests and simulations, and an append-only JSON-lines file, fsync'd per record.
import { open, readFile, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { decodeRecord, encodeRecord } from './records.ts'
import { MuxError, type MuxRecord } from './types.ts'

export interface MuxStore {
  /** Resolves once the record is durable; the machine is told with recordPersisted() only then. */
  append(record: MuxRecord): Promise<void>
  /** Every record, in append order. */
  load(): AsyncIterable<MuxRecord>
}

export class MemoryMuxStore implements MuxStore {
  readonly records: MuxRecord[] = []

  async append(record: MuxRecord): Promise<void> {
    this.records.push(record)
  }

  async *load(): AsyncIterable<MuxRecord> {
    yield* this.records
  }
}

/**
 * One JSON line per record. A line is durable once append() resolves (write + fsync); a crash
 * mid-write leaves a torn last line, which open() cuts off: its append never resolved, so nobody
 * acted on it. A bad line anywhere else is corruption and fails load().
 */
export class FileMuxStore implements MuxStore {
  private queue: Promise<void> = Promise.resolve()
  private failure: Error | undefined

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle
  ) {}

  static async open(path: string): Promise<FileMuxStore> {
    const handle = await open(path, 'a+')
    try {
      const content = await handle.readFile()
      const end = content.lastIndexOf(0x0a) + 1
      if (end < content.length) {
        await handle.truncate(end)
        await handle.sync()
      }
      if (content.length === 0) await syncDirectory(dirname(path))
    } catch (err) {
      await handle.close()
      throw err
    }
    return new FileMuxStore(path, handle)
  }

  append(record: MuxRecord): Promise<void> {
    const line = Buffer.from(encodeRecord(record) + '\n')
    const write = this.queue.then(async () => {
      if (this.failure !== undefined) throw new MuxError('store_failed', `record store ${this.path} failed earlier: ${this.failure.message}`)
      try {
        await this.handle.write(line)
        await this.handle.sync()
      } catch (err) {
        // The file may now end in a partial line: refuse to append after it (open() repairs it).
        this.failure = err as Error
        throw new MuxError('store_failed', `record store ${this.path}: ${(err as Error).message}`)
      }
    })
    this.queue = write.catch(() => undefined)
    return write
  }

  async *load(): AsyncIterable<MuxRecord> {
    await this.queue
    const lines = (await readFile(this.path, 'utf8')).split('\n')
    lines.pop() // after the last newline: empty, or a torn line open() has not seen
    for (let i = 0; i < lines.length; i++) {
      try {
        yield decodeRecord(lines[i]!)
      } catch (err) {
        if (err instanceof MuxError) throw new MuxError('bad_record', `${this.path} line ${i + 1}: ${err.message}`)
        throw err
      }
    }
  }

  async close(): Promise<void> {
    await this.queue
    await this.handle.close()
  }
}

/** A new file's directory entry is only durable once the directory itself is fsync'd. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
