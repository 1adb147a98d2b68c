// Cluster transport costs: signing and verifying envelopes (with raw ed25519 as the reference), the
// inbound gate, and the edge → leader → edge round trip of an htlc-offer answered by an
// htlc-decision between two ClusterSwarms over a local DHT testnet on 127.0.0.1: latency at a
// paced 100 offers/s, and throughput with offers pipelined.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sodium from 'sodium-universal'
import createTestnet from 'hyperdht/testnet.js'
import { ClusterSwarm, type LocalHello } from '../src/cluster/swarm.ts'
import { decodeEnvelope, encodeEnvelope, verifyEnvelope } from '../src/cluster/envelope.ts'
import { InboundGate, DEFAULT_RATE_LIMITS } from '../src/cluster/guard.ts'
import type { HtlcDecision, HtlcOffer, Message } from '../src/cluster/messages.ts'
import { FIXTURE, recordEnvelopes } from '../test/fixtures/record.ts'
import { quantile, ratePerSecond } from './measure.ts'
import type { Emit } from './index.ts'

const PACED_PER_S = 100
const PACED_COUNT = 300
const PIPELINED_COUNT = 5000

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The recorded htlc-offer and settle decision (test/fixtures): real sizes, real onion. */
function recorded(): { offer: HtlcOffer; decision: HtlcDecision } {
  const pick = (type: string) => decodeEnvelope(Buffer.from(recordEnvelopes().find((e) => e.type === type)!.hex, 'hex')).message
  return { offer: pick('htlc-offer') as HtlcOffer, decision: pick('htlc-decision') as HtlcDecision }
}

function codecRates(emit: Emit, offer: HtlcOffer): void {
  const kp = FIXTURE.edge
  let seq = 0
  const bytes = encodeEnvelope(kp, 1, FIXTURE.time, offer)
  const message = new Uint8Array(bytes.byteLength - 64)
  const signature = new Uint8Array(64)
  sodium.crypto_sign_detached(signature, message, kp.secretKey)
  emit('envelope_encode_sign_per_s', ratePerSecond(() => encodeEnvelope(kp, ++seq, FIXTURE.time, offer), 1, 64), 'ops/s', {
    message: 'htlc-offer',
    bytes: bytes.byteLength,
    reference_ed25519_sign_per_s: Math.round(ratePerSecond(() => sodium.crypto_sign_detached(signature, message, kp.secretKey), 0.5, 64))
  })
  emit('envelope_decode_verify_per_s', ratePerSecond(() => verifyEnvelope(decodeEnvelope(bytes)), 1, 64), 'ops/s', {
    message: 'htlc-offer',
    reference_ed25519_verify_per_s: Math.round(ratePerSecond(() => sodium.crypto_sign_verify_detached(signature, message, kp.publicKey), 0.5, 64))
  })
  // The whole inbound path of one frame: rate, decode, sender, signature, skew, sequence.
  const frames = Array.from({ length: 20_000 }, (_, i) => encodeEnvelope(kp, i + 1, FIXTURE.time, offer))
  const gate = new InboundGate(hex(kp.publicKey), new Map(), { limits: { ...DEFAULT_RATE_LIMITS, messageBurst: 1e9, byteBurst: 1e12 }, maxClockSkewMs: 60_000 }, FIXTURE.time)
  const start = process.hrtime.bigint()
  for (const frame of frames) gate.check(frame, FIXTURE.time)
  emit('inbound_gate_check_per_s', frames.length / (Number(process.hrtime.bigint() - start) / 1e9), 'ops/s', { message: 'htlc-offer' })
}

const hello: LocalHello = { role: 'edge', priority: 1, muxKey: null, nodes: [], auditCore: new Uint8Array(32) }

async function roundTrips(emit: Emit, offer: HtlcOffer, decision: HtlcDecision): Promise<void> {
  const net = await createTestnet(3, { host: '127.0.0.1' })
  const secret = new Uint8Array(32)
  sodium.randombytes_buf(secret)
  const dirs = await Promise.all([0, 1].map(() => mkdtemp(join(tmpdir(), 'highwire-bench-'))))
  const open = (storage: string) => ClusterSwarm.open({ secret, storage, hello, bootstrap: net.bootstrap, host: '127.0.0.1' })
  const [edge, leader] = await Promise.all(dirs.map(open)) as [ClusterSwarm, ClusterSwarm]
  try {
    const edgeKey = hex(edge.publicKey)
    const leaderKey = hex(leader.publicKey)
    await new Promise<void>((resolve) => {
      const check = () => (edge.peers.get(leaderKey)?.hello && leader.peers.get(edgeKey)?.hello ? resolve() : setTimeout(check, 10))
      check()
    })
    // The leader answers every offer with a decision for its circuit, as the mux would once decided.
    leader.on('message', (envelope) => {
      const m = envelope.message
      if (m.type === 'htlc-offer') leader.send(edgeKey, { ...decision, term: m.term, circuit: m.circuit } satisfies Message)
    })
    const pending = new Map<bigint, (at: number) => void>()
    edge.on('message', (envelope) => {
      const m = envelope.message
      if (m.type === 'htlc-decision') pending.get(m.circuit.htlcId)?.(performance.now())
    })
    let nextId = 1_000n
    const send = (): Promise<number> => {
      const htlcId = nextId++
      const sent = performance.now()
      const done = new Promise<number>((resolve) => pending.set(htlcId, (at) => { pending.delete(htlcId); resolve(at - sent) }))
      edge.send(leaderKey, { ...offer, circuit: { ...offer.circuit, htlcId } })
      return done
    }

    const latencies: Promise<number>[] = []
    for (let i = 0; i < PACED_COUNT; i++) {
      latencies.push(send())
      await new Promise((r) => setTimeout(r, 1000 / PACED_PER_S))
    }
    const sorted = (await Promise.all(latencies)).sort((a, b) => a - b)
    emit('offer_decision_rtt_p50_ms', quantile(sorted, 0.5), 'ms', { paced_per_s: PACED_PER_S, count: PACED_COUNT })
    emit('offer_decision_rtt_p99_ms', quantile(sorted, 0.99), 'ms', { paced_per_s: PACED_PER_S, count: PACED_COUNT })

    const start = performance.now()
    // Below the default burst (20,000 messages): the gate does not throttle this run.
    await Promise.all(Array.from({ length: PIPELINED_COUNT }, send))
    const seconds = (performance.now() - start) / 1000
    emit('offer_decision_pipelined_per_s', PIPELINED_COUNT / seconds, 'round trips/s', { count: PIPELINED_COUNT })
  } finally {
    await Promise.all([edge.close(), leader.close()])
    await net.destroy()
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
  }
}

export default async function (emit: Emit): Promise<void> {
  const { offer, decision } = recorded()
  codecRates(emit, offer)
  await roundTrips(emit, offer, decision)
}
