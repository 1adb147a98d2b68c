// The status message on the wire: what the server writes, proto-encoded and decoded as grpc-js does,
// reads back equal; an answer of the wrong shape is a typed StatusError, not a crash or a wrong view.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ClusterService, StatusError, statusFromWire, statusToWire, type ClusterStatus } from '../../src/api/status.ts'
import { formatStatus } from '../../src/cli/status.ts'

const key = (fill: number, length: number): Uint8Array => new Uint8Array(length).fill(fill)

const STATUS: ClusterStatus = {
  agent: key(1, 32),
  role: 'candidate',
  standing: 'leader',
  term: 7,
  leader: key(1, 32),
  serving: true,
  knownRecords: 3,
  muxPubkey: key(2, 33),
  blockHeight: 812,
  software: 'highwire/0.1.0',
  timeMs: 1_800_000_000_000,
  members: [
    { agent: key(1, 32), role: 'candidate', self: true, voter: true, leader: true, connected: true, initiator: false, connectedAtMs: 0, lastSeenMs: 1_800_000_000_000, rttMs: 0, priority: -2, nodes: [{ pubkey: key(3, 33), alias: 'alice', virtualScid: 2n ** 64n - 1n, inboundMsat: 123_456_789n }] },
    { agent: key(4, 32), role: 'witness', self: false, voter: true, leader: false, connected: true, initiator: true, connectedAtMs: 1_799_999_990_000, lastSeenMs: 1_799_999_999_700, rttMs: 3, priority: 0, nodes: [] },
    { agent: key(5, 32), role: 'unknown', self: false, voter: true, leader: false, connected: false, initiator: false, connectedAtMs: 0, lastSeenMs: 0, rttMs: null, priority: 0, nodes: [] }
  ],
  lnd: [{ name: 'alice', pubkey: key(3, 33), host: '127.0.0.1:10009', reachable: false, blockHeight: 811, syncedToChain: false, error: 'lnd alice did not answer within 2000 ms' }]
}

/** Serialise and parse with the service's own codec, as the client receives it. */
function overTheWire(message: object): Record<string, unknown> {
  const method = ClusterService.service.GetStatus!
  return method.responseDeserialize(method.responseSerialize(message)) as Record<string, unknown>
}

test('a status survives the proto codec unchanged: u64 scids, negative priority, no rtt, no leader', () => {
  assert.deepEqual(statusFromWire(overTheWire(statusToWire(STATUS))), STATUS)
  const leaderless = { ...STATUS, leader: null, muxPubkey: null, serving: false, standing: 'electing' as const }
  assert.deepEqual(statusFromWire(overTheWire(statusToWire(leaderless))), leaderless)
})

test('answers of the wrong shape are StatusError bad_status, naming the field', () => {
  const wire = () => overTheWire(statusToWire(STATUS))
  const cases: [string, (w: any) => void, RegExp][] = [
    ['short agent key', (w) => { w.agent = Buffer.alloc(31) }, /^agent is 31 bytes, expected 32$/],
    ['no agent key', (w) => { w.agent = Buffer.alloc(0) }, /^agent is empty$/],
    ['no role', (w) => { w.role = 'ROLE_UNKNOWN' }, /no role/],
    ['unknown standing', (w) => { w.standing = 'KING' }, /^standing KING is not known$/],
    ['bad node key', (w) => { w.members[0].nodes[0].pubkey = Buffer.alloc(32) }, /^pubkey is 32 bytes, expected 33$/],
    ['term not a number', (w) => { w.term = '7e3' }, /^term is not an integer$/],
    ['members not a list', (w) => { w.members = null }, /^members is not a list$/]
  ]
  for (const [what, mutate, message] of cases) {
    const w = wire()
    mutate(w)
    assert.throws(() => statusFromWire(w), (err: unknown) => err instanceof StatusError && err.code === 'bad_status' && message.test(err.message), what)
  }
})

test('the readable form names the standing, every member with its health, and why an lnd is down', () => {
  const lines = formatStatus(STATUS)
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
  assert.equal(lines[0], `agent   ${hex(STATUS.agent)} (candidate, highwire/0.1.0)`)
  assert.equal(lines[1], 'term    7: leader, serving; leader this agent')
  assert.equal(lines[4], 'members (3, 2 connected):')
  assert.equal(lines[5], `  * ${hex(key(1, 32))}  candidate, voter, LEADER, this agent`)
  assert.equal(lines[6], `      node alice ${hex(key(3, 33))}  virtual scid 16777215x16777215x65535  inbound 123,456 sat`)
  assert.equal(lines[7], `  + ${hex(key(4, 32))}  witness, voter  connected (dialled), rtt 3 ms, last seen 300 ms ago`)
  assert.equal(lines[8], `  - ${hex(key(5, 32))}  unknown, voter  not connected`)
  assert.equal(lines.at(-1), `  alice 127.0.0.1:10009 ${hex(key(3, 33))}  UNREACHABLE: lnd alice did not answer within 2000 ms`)
})
