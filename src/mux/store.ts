// Where the virtual node's durable records live: append (resolving once durable) and replay at
// start. The agent's audit core implements it (src/audit/mux-store.ts AuditMuxStore).
import type { MuxRecord } from './types.ts'

export interface MuxStore {
  /** Resolves once the record is durable; the machine is told with recordPersisted() only then. */
  append(record: MuxRecord): Promise<void>
  /** Every record, in append order. */
  load(): AsyncIterable<MuxRecord>
}
