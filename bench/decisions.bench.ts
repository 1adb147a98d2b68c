// HTLC decisions through a two-agent cluster on loopback: edge agent → leader → edge agent, every
// step real. Carol offers HTLCs to Bob (simulated lnd, --requireinterceptor) with onions built as a
// payer would for the virtual node; Bob's agent B (an edge: Bob's credentials, no identity key)
// intercepts them over lnd's gRPC stream and offers each to the leader A (Alice's operator, the only
// candidate) over Hyperswarm; A peels the onion, checks the payment against its stateless invoice,
// and, autoSettle on, stores the settle record durably and sends it to B; once A's copy is stored it
// sends the signed decision, which B (the other voter: its copy completes the majority) applies once
// its own copy is stored, settling the HTLC at Bob. Measured from Carol's update_add_htlc (Bob
// intercepts it at once) to the settle reaching Carol.
// Onions are built before the clock starts: they are the payer's cost, not the cluster's.
// References, same run. For the latency: two audit logs each making one record durable per HTLC at
// the paced rate, side by side on this disk (the write-ahead each settle waits for: the leader's
// settle record and the edge's copy of it), timed until both are durable; the decision's p99 can
// be no better than this pair's. For the throughput: the CPU each process spent per decision in the
// pipelined phase (every thread: /proc/<pid>/stat), and the rate those costs allow on this
// machine's cores were nothing else running.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLog } from '../src/audit/log.ts'
import { buildOnion, encodeHopPayload } from '../src/ln/onion.ts'
import { virtualScid } from '../src/ln/scid.ts'
import { secp256k1 } from '../src/ln/secp256k1.ts'
import { newPaymentAddr, statelessPreimage } from '../src/ln/stateless.ts'
import type { HtlcAdd, HtlcOutcome } from '../src/sim/network.ts'
import { cpuMs, SimCluster } from './cluster-fixture.ts'
import type { Emit } from './index.ts'
import { quantile } from './measure.ts'

const AMOUNT_MSAT = 1_000_000n
const MIN_FINAL_CLTV = 18 // the agents' mux.minFinalCltvExpiry
const HINT_CLTV_DELTA = 40 // the agents' routing policy
const PACED_PER_S = 100
const PACED_COUNT = 1000
const PIPELINED_COUNT = 3000
/** HTLCs in flight at once: below BOLT 2's max_accepted_htlcs (483) on Carol's channel to Bob. */
const WINDOW = 300
const WARMUP = 50
const TARGET_PER_S = 2000
const TARGET_P99_MS = 20

/** One durable htlc_decided record, as each agent writes per settle. */
function durableAppend(log: AuditLog, htlcId: number): Promise<void> {
  return log.append({ type: 'htlc_decided', time: Date.now(), node: new Uint8Array(33).fill(2), chanId: 1n, htlcId: BigInt(htlcId), hash: randomBytes(32), term: 1, action: 'settle', reason: '' }, { durable: true })
}

/** Sorted ms until two fresh audit logs both hold a durable record, PACED_COUNT times at PACED_PER_S. */
async function durablePairMs(): Promise<number[]> {
  const dirs = await Promise.all([0, 1].map((i) => mkdtemp(join(tmpdir(), `highwire-bench-audit-${i}-`))))
  const logs = await Promise.all(dirs.map((path) => AuditLog.open({ path })))
  try {
    const pairs: Promise<number>[] = []
    for (let i = 0; i < PACED_COUNT; i++) {
      const started = performance.now()
      pairs.push(Promise.all(logs.map((log) => durableAppend(log, i))).then(() => performance.now() - started))
      await new Promise((r) => setTimeout(r, 1000 / PACED_PER_S))
    }
    return (await Promise.all(pairs)).sort((a, b) => a - b)
  } finally {
    for (const log of logs) await log.close()
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  }
}

export default async function (emit: Emit): Promise<void> {
  const pair = await durablePairMs()
  const pairContext = { paced_per_s: PACED_PER_S, count: PACED_COUNT, what: 'two audit logs, one durable record each, side by side' }
  emit('audit_durable_pair_p50_ms', quantile(pair, 0.5), 'ms', { ...pairContext, reference_for: 'htlc_decision_p50_ms' })
  emit('audit_durable_pair_p99_ms', quantile(pair, 0.99), 'ms', { ...pairContext, reference_for: 'htlc_decision_p99_ms' })
  const cluster = await SimCluster.start([
    { name: 'A', node: 'alice', candidate: true, autoSettle: true },
    { name: 'B', node: 'bob', candidate: false }
  ])
  try {
    const leader = await cluster.settled()
    if (leader.spec.name !== 'A') throw new Error('A, the only candidate, must lead')
    const bob = cluster.nodes.get('bob')!
    const channel = cluster.network.channelsOf(cluster.carol).find((c) => c.peer(cluster.carol) === bob)!
    const virtualNode = secp256k1.publicKey(cluster.identityKey)
    const expiryUnix = Math.floor(Date.now() / 1000) + 3600

    /** One single-part payment of a fresh stateless invoice, through Bob's route hint. */
    const payment = (): HtlcAdd => {
      const paymentAddr = newPaymentAddr(expiryUnix, AMOUNT_MSAT, randomBytes(16))
      const paymentHash = createHash('sha256').update(statelessPreimage(cluster.identityKey, paymentAddr)).digest()
      const finalCltv = cluster.network.height + MIN_FINAL_CLTV + 3
      const hops = [
        { pubkey: bob.pubkey, payload: encodeHopPayload({ amtToForward: AMOUNT_MSAT, outgoingCltvValue: finalCltv, shortChannelId: virtualScid(bob.pubkey) }) },
        { pubkey: virtualNode, payload: encodeHopPayload({ amtToForward: AMOUNT_MSAT, outgoingCltvValue: finalCltv, paymentData: { paymentSecret: paymentAddr, totalMsat: AMOUNT_MSAT } }) }
      ]
      return { amountMsat: AMOUNT_MSAT, expiry: finalCltv + HINT_CLTV_DELTA, paymentHash, onion: buildOnion(hops, randomBytes(32), paymentHash).packet }
    }
    /** Offers one HTLC; resolves with ms from the offer to the settle. */
    const offer = (add: HtlcAdd): Promise<number> => new Promise((resolve, reject) => {
      const sent = performance.now()
      cluster.network.offerHtlc(cluster.carol, channel, add, (outcome: HtlcOutcome) => {
        if (outcome.type === 'settled') resolve(performance.now() - sent)
        else reject(new Error(`HTLC ${outcome.type}, not settled`))
      })
    })

    await Promise.all(Array.from({ length: WARMUP }, () => offer(payment())))

    const paced = Array.from({ length: PACED_COUNT }, payment)
    const latencies: Promise<number>[] = []
    for (const add of paced) {
      latencies.push(offer(add))
      await new Promise((r) => setTimeout(r, 1000 / PACED_PER_S))
    }
    const sorted = (await Promise.all(latencies)).sort((a, b) => a - b)
    const pacedContext = { paced_per_s: PACED_PER_S, count: PACED_COUNT, path: 'carol→bob(B edge)→A leader→B→bob, settle' }
    emit('htlc_decision_p50_ms', quantile(sorted, 0.5), 'ms', pacedContext)
    emit('htlc_decision_p99_ms', quantile(sorted, 0.99), 'ms', { ...pacedContext, target_ms: TARGET_P99_MS })

    const pipelined = Array.from({ length: PIPELINED_COUNT }, payment)
    const processes = { leader_A: cluster.agent('A').pid(), edge_B: cluster.agent('B').pid(), sim_lnd_and_payer: process.pid }
    const cpuBefore = Object.values(processes).map(cpuMs)
    const started = performance.now()
    let next = 0
    const lane = async (): Promise<void> => {
      while (next < pipelined.length) await offer(pipelined[next++]!)
    }
    await Promise.all(Array.from({ length: WINDOW }, lane))
    const seconds = (performance.now() - started) / 1000
    const cpuPerDecision = Object.values(processes).map((pid, i) => (cpuMs(pid) - cpuBefore[i]!) / PIPELINED_COUNT)
    emit('htlc_decisions_per_s', PIPELINED_COUNT / seconds, 'decisions/s', { count: PIPELINED_COUNT, in_flight: WINDOW, target_per_s: TARGET_PER_S, decision: 'settle, committed on both voters' })
    const perProcess = Object.fromEntries(Object.keys(processes).map((name, i) => [name, Number(cpuPerDecision[i]!.toFixed(3))]))
    const total = cpuPerDecision.reduce((a, b) => a + b, 0)
    emit('htlc_decision_cpu_ms', total, 'ms', { per_process: perProcess, phase: 'pipelined' })
    emit('htlc_decisions_per_s_cpu_bound', (availableParallelism() * 1000) / total, 'decisions/s', { cores: availableParallelism(), reference_for: 'htlc_decisions_per_s' })
  } finally {
    await cluster.close()
  }
}
