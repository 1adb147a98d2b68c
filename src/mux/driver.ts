// Glue between the pure machine and a MuxStore: every `persist` output is appended, and only once
// the store confirms it is the machine told (recordPersisted), which is when a settle request's
// preimages are emitted (DESIGN.md invariant 6). Other outputs go to `onOutput` in order.
// Timers stay with the caller: call tick() at nextDeadline() and blockHeight() on each block.
import { MuxMachine, type MuxOptions } from './machine.ts'
import type { MuxStore } from './store.ts'
import type { Circuit, InterceptedHtlc, MuxOutput, MuxRecord } from './types.ts'

export interface MuxDriverOptions extends MuxOptions {
  store: MuxStore
  /** Decisions, accepted sets and final statuses, in the order the machine produced them. */
  onOutput: (output: MuxOutput) => void
}

export class MuxDriver {
  private constructor(
    readonly machine: MuxMachine,
    private readonly store: MuxStore,
    private readonly onOutput: (output: MuxOutput) => void
  ) {}

  /** Rebuilds the machine from every record in the store. */
  static async open(opts: MuxDriverOptions): Promise<MuxDriver> {
    const records: MuxRecord[] = []
    for await (const record of opts.store.load()) records.push(record)
    return new MuxDriver(MuxMachine.restore(opts, records), opts.store, opts.onOutput)
  }

  /** Decisions come through onOutput; the promise settles when any record it caused is durable. */
  htlc(htlc: InterceptedHtlc): Promise<void> {
    return this.run(this.machine.htlc(htlc))
  }

  /** Resolves once the settle record is durable and the settle decisions are out. */
  settle(hash: Uint8Array, setId: Uint8Array): Promise<void> {
    return this.run(this.machine.settle(hash, setId))
  }

  /** Resolves once the cancel record is durable. */
  cancel(hash: Uint8Array): Promise<void> {
    return this.run(this.machine.cancel(hash))
  }

  htlcResolved(circuit: Circuit, settled: boolean): Promise<void> {
    return this.run(this.machine.htlcResolved(circuit, settled))
  }

  blockHeight(height: number): Promise<void> {
    return this.run(this.machine.blockHeight(height))
  }

  tick(): Promise<void> {
    return this.run(this.machine.tick())
  }

  private async run(outputs: MuxOutput[]): Promise<void> {
    const writes: Promise<void>[] = []
    for (const output of outputs) {
      if (output.kind === 'persist') writes.push(this.persist(output.record))
      else this.onOutput(output)
    }
    await Promise.all(writes)
  }

  private async persist(record: MuxRecord): Promise<void> {
    try {
      await this.store.append(record)
    } catch (err) {
      await this.run(this.machine.recordFailed(record))
      throw err
    }
    await this.run(this.machine.recordPersisted(record))
  }
}
