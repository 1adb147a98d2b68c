// An HTLC as the interceptor hands it to an edge, for the edge tests.
import type { EdgeHtlc } from '../../src/edge/edge.ts'

export const NODE = '02' + 'aa'.repeat(32)

export function heldHtlc(htlcId: bigint, paymentHash: Buffer, overrides: Partial<EdgeHtlc> = {}): EdgeHtlc {
  return {
    node: NODE,
    circuit: { chanId: 123n, htlcId },
    incomingAmountMsat: 10_040n,
    incomingExpiry: 300,
    outgoingAmountMsat: 10_000n,
    outgoingExpiry: 260,
    outgoingRequestedChanId: 0x8000_0000_0000_0001n,
    paymentHash,
    onionBlob: Buffer.alloc(1366),
    customRecords: new Map(),
    inWireCustomRecords: new Map(),
    autoFailHeight: 281,
    onChain: false,
    ...overrides
  }
}
