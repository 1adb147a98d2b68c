// What an edge learns from the audit cores before it fails a part for want of a leader (DESIGN.md
// invariant 1: edges keep the signed decision and its preimage). Every member stores the envelopes it
// receives as received, and replicates every other member's core, so a settle decision that reached
// any edge sits, with its preimage, in that edge's core. A preimage authenticates itself (it hashes
// to the payment hash), so no signature needs trusting: Edge.settleKnown keys it by its hash.
import type Hypercore from 'hypercore'
import { readNewBlocks } from '../audit/log.ts'
import type { AuditRecord } from '../audit/records.ts'
import { decodeEnvelope, unbatch } from '../cluster/envelope.ts'

/** The preimages of the settle decisions that `records` carry in their envelopes. */
export function settlePreimages(records: readonly AuditRecord[]): Uint8Array[] {
  const preimages: Uint8Array[] = []
  for (const record of records) {
    if (record.type !== 'envelope') continue
    let envelope
    try {
      envelope = decodeEnvelope(record.envelope)
    } catch {
      continue // a core may hold envelopes of a newer protocol: nothing to learn from those
    }
    for (const { message } of unbatch(envelope)) {
      if (message.type === 'htlc-decision' && message.resolution.kind === 'settle') preimages.push(message.resolution.preimage)
    }
  }
  return preimages
}

/**
 * Reads each core once, from where the last scan of it stopped. A settle decision for an HTLC comes
 * after every part of its set was intercepted, so it sits in a block appended after the HTLC was
 * held: scanning on behalf of every HTLC held at the time misses none of theirs. Except for one
 * lnd replays to an agent that was down meanwhile: its settle decision may sit in blocks read
 * before; for it, `rewind` makes the next scan start from the first block.
 */
export class SettleScanner {
  /** Core key (hex) → the next block to read. */
  private readonly next = new Map<string, number>()
  private running: Promise<void> | null = null
  /** Rewound while a scan ran: it reads every core once more, from the first block. */
  private rewound = false

  /** The next scan (or, during one, one more pass of it) reads every core from its first block. */
  rewind(): void {
    if (this.running === null) this.next.clear()
    else this.rewound = true
  }

  /** Calls `found` with every settle preimage in the blocks not read yet; one scan at a time. */
  scan(cores: readonly Hypercore[], found: (preimage: Uint8Array) => void): Promise<void> {
    this.running ??= this.scanAll(cores, found).finally(() => {
      this.running = null
    })
    return this.running
  }

  private async scanAll(cores: readonly Hypercore[], found: (preimage: Uint8Array) => void): Promise<void> {
    do {
      if (this.rewound) this.next.clear()
      this.rewound = false
      await this.pass(cores, found)
    } while (this.rewound)
  }

  private async pass(cores: readonly Hypercore[], found: (preimage: Uint8Array) => void): Promise<void> {
    for await (const { records } of readNewBlocks(cores, this.next)) {
      for (const preimage of settlePreimages(records)) found(preimage)
    }
  }
}
