// DESIGN.md's invariants, checked over a finished simulation run: from the members' action log,
// what each LND resolved, what each store held when, and what the application asked for. The
// harness itself flags what it sees as it happens (two resolutions of one circuit, lnd failing an
// HTLC at its auto_fail_height under an attentive agent, a crash); this file checks the rest.
import { createHash } from 'node:crypto'
import { majority } from '../../src/cluster/election.ts'
import { edgeHtlcId } from '../../src/edge/edge.ts'
import type { MuxRecord } from '../../src/mux/types.ts'
import { StatementFold } from '../../src/audit/replay.ts'
import type { ClusterSim, Resolution, Violation } from './cluster.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()
const short = (h: string): string => h.slice(0, 12)

type SettleRecord = MuxRecord & { type: 'settle_requested' }

/** What the application did, for invariants 2 and 3 and the msat accounting. */
export interface AppLog {
  /** Every SettleInvoice the application made that the leader took (hash, set id hex; ms). */
  settleCalls: { hash: string; setId: string; at: number }[]
  /** Every invoice paid, by payment hash hex. */
  invoices: Map<string, { amountMsat: bigint; plan: string }>
}

const circuitKey = (c: { node: Uint8Array; chanId: bigint; htlcId: bigint }): string => edgeHtlcId({ node: hex(c.node), circuit: c })

export function checkInvariants(sim: ClusterSim, app: AppLog): Violation[] {
  const out: Violation[] = []
  const add = (invariant: string, detail: string): void => {
    out.push({ invariant, detail })
  }

  // Settle records anyone wrote, the ones a majority committed, and committed cancels, by hash.
  const records = new Map<string, Map<string, SettleRecord>>()
  const committedSettles = new Map<string, Set<string>>()
  const committedCancels = new Map<string, number>()
  for (const { action } of sim.log) {
    if (action.type === 'persist-record' && action.record.type === 'settle_requested') {
      const byId = records.get(hex(action.record.hash)) ?? new Map<string, SettleRecord>()
      byId.set(hex(action.record.setId), action.record)
      records.set(hex(action.record.hash), byId)
    }
    if (action.type === 'committed' && action.record.type === 'settle_requested') {
      const ids = committedSettles.get(hex(action.record.hash)) ?? new Set<string>()
      ids.add(hex(action.record.setId))
      committedSettles.set(hex(action.record.hash), ids)
    }
    if (action.type === 'committed' && action.record.type === 'cancelled' && !committedCancels.has(hex(action.record.hash))) {
      committedCancels.set(hex(action.record.hash), action.record.time)
    }
  }
  const resolutionOf = new Map<string, Resolution>()
  for (const r of sim.resolutions) {
    const key = edgeHtlcId(r.htlc)
    if (resolutionOf.has(key)) add('4-one-resolution', `${key} resolved twice on its LND`)
    resolutionOf.set(key, r)
  }
  // HTLCs an edge failed on its own, at its deadline, rather than on a leader's decision.
  const ownDeadline = new Set<string>()
  for (const { agent, action } of sim.log) if (action.type === 'edge-record' && action.from === agent && action.decision.action === 'fail' && 'failureCode' in action.decision) ownDeadline.add(`${agent}|${action.id}`)
  const settledByHash = new Map<string, Resolution[]>()
  for (const r of sim.resolutions) {
    if (r.by !== 'agent' || r.decision.action !== 'settle') continue
    const list = settledByHash.get(hex(r.htlc.paymentHash)) ?? []
    list.push(r)
    settledByHash.set(hex(r.htlc.paymentHash), list)
  }

  const hashes = new Set([...committedSettles.keys(), ...settledByHash.keys()])
  for (const hash of hashes) {
    const settled = settledByHash.get(hash) ?? []
    const committed = committedSettles.get(hash) ?? new Set<string>()
    // 2: one set per invoice; a committed cancel stays cancelled.
    if (committed.size > 1) add('2-one-set', `${short(hash)}: ${committed.size} different sets committed for settlement`)
    const byId = records.get(hash) ?? new Map<string, SettleRecord>()
    const setsSettled = new Set<string>()
    for (const r of settled) {
      const inSet = [...byId].find(([, record]) => record.htlcs.some((h) => circuitKey(h.circuit) === edgeHtlcId(r.htlc)))
      if (inSet === undefined) add('2-one-set', `${short(hash)}: ${edgeHtlcId(r.htlc)} settled but in no settle record`)
      else setsSettled.add(inSet[0])
    }
    if (setsSettled.size > 1) add('2-one-set', `${short(hash)}: parts of ${setsSettled.size} different sets settled`)
    if (committedCancels.has(hash)) add('2-one-set', `${short(hash)}: settled although its cancel was committed`)

    // 1: every part of the set chosen for settlement ends settled.
    const chosenId = [...committed][0] ?? [...setsSettled][0]
    const record = chosenId === undefined ? undefined : byId.get(chosenId)
    if (record === undefined) continue
    let settledMsat = 0n
    let complete = true
    for (const h of record.htlcs) {
      const key = circuitKey(h.circuit)
      const r = resolutionOf.get(key)
      if (r === undefined) {
        complete = false
        add('1-no-money-left-behind', `${short(hash)}: ${key} of the settled set was never resolved`)
      } else if (r.decision.action !== 'settle') {
        complete = false
        const how = r.by === 'lnd' ? 'by lnd at its auto_fail_height' : ownDeadline.has(`${r.agent}|${key}`) ? "by its holder's deadline: no settle decision reached it" : 'by a decision'
        add('1-no-money-left-behind', `${short(hash)}: ${key} of the settled set was failed at height ${r.height} ${how}`)
      } else settledMsat += r.htlc.outgoingAmountMsat
    }
    // Every settled msat accounted for: the parts add up to the invoice and to the record.
    const invoice = app.invoices.get(hash)
    if (complete && (settledMsat !== record.amountMsat || invoice === undefined || invoice.amountMsat !== settledMsat)) {
      add('accounting', `${short(hash)}: parts settled ${settledMsat} msat, record says ${record.amountMsat}, invoice ${invoice?.amountMsat}`)
    }
  }

  // 3: every settle record answers an application's SettleInvoice for that very set.
  for (const [hash, byId] of records) {
    for (const [setId, record] of byId) {
      const asked = app.settleCalls.some((c) => c.hash === hash && c.setId === setId && c.at <= record.time)
      if (!asked) add('3-settle-only-when-asked', `${short(hash)}: settle record for set ${short(setId)} without the application's settle`)
    }
  }

  checkFencing(sim, add)
  checkWriteAhead(sim, add)
  checkStatement(sim, add)
  return out
}

/**
 * Every msat a node settled for the virtual node is in the audit statement (the replay tool's
 * `statement` over every agent's core), under that node and the operator that holds it, and
 * nothing else is.
 */
function checkStatement(sim: ClusterSim, add: (invariant: string, detail: string) => void): void {
  const fold = new StatementFold()
  for (const agent of sim.agents.values()) for (const record of agent.audit) fold.add(agent.spec.id, record)
  const sheet = fold.result()
  const received = new Map<string, bigint>()
  for (const r of sim.resolutions) {
    if (r.by === 'agent' && r.decision.action === 'settle') received.set(r.htlc.node, (received.get(r.htlc.node) ?? 0n) + r.htlc.outgoingAmountMsat)
  }
  const stated = new Map<string, bigint>()
  for (const [operator, nodes] of sheet.operators) {
    for (const [node, line] of nodes) {
      stated.set(node, (stated.get(node) ?? 0n) + line.msat)
      const holder = [...sim.agents.values()].find((a) => a.spec.nodes.includes(node))?.spec.id
      if (operator !== holder) add('accounting', `statement puts node ${short(node)} under operator ${short(operator)}, held by ${short(holder ?? '?')}`)
    }
  }
  for (const node of new Set([...received.keys(), ...stated.keys()])) {
    const got = received.get(node) ?? 0n
    const says = stated.get(node) ?? 0n
    if (got !== says) add('accounting', `node ${short(node)} settled ${got} msat for the virtual node, the audit statement says ${says}`)
  }
}

/** 5: one leader per term, and edges take decisions only from the leader and term they forwarded to. */
function checkFencing(sim: ClusterSim, add: (invariant: string, detail: string) => void): void {
  const servedBy = new Map<number, Set<string>>()
  const forwarded = new Set<string>()
  for (const { agent, action } of sim.log) {
    if (action.type === 'serving') {
      const set = servedBy.get(action.term) ?? new Set<string>()
      set.add(agent)
      servedBy.set(action.term, set)
      if (set.size > 1) add('5-fencing', `term ${action.term} served by ${set.size} leaders`)
    }
    if (action.type === 'send' && action.message.type === 'htlc-offer') {
      forwarded.add(`${agent}|${action.to}|${action.message.term}|${circuitKey(action.message.circuit)}`)
    }
    // An edge's own decisions (its own leadership, a deadline) are not forwarded anywhere.
    if (action.type === 'edge-record' && action.from !== agent) {
      if (!forwarded.has(`${agent}|${action.from}|${action.term}|${action.id}`)) {
        add('5-fencing', `${agent.slice(0, 8)} took a decision for ${action.id} from ${action.from.slice(0, 8)} in term ${action.term}, which it never forwarded to`)
      } else if (!servedBy.get(action.term)?.has(action.from)) {
        add('5-fencing', `${agent.slice(0, 8)} took a decision for ${action.id} from ${action.from.slice(0, 8)}, which never served term ${action.term}`)
      }
    }
  }
}

/**
 * 6: no settle reaches an LND before a majority of the voters stored the settle record; no preimage
 * leaves a leader before it stored the record itself and a majority did, counting, for a settle sent
 * ahead of the commit (uncommittedRecord), the holder it goes to; no edge resolves before it recorded
 * the decision, durably or covered by a settle record it stored itself.
 */
function checkWriteAhead(sim: ClusterSim, add: (invariant: string, detail: string) => void): void {
  const voterIds = new Set([...sim.agents.values()].filter((a) => a.spec.nodes.length > 0 || a.spec.witness === true).map((a) => a.spec.id))
  const voters = voterIds.size
  const need = majority(voters)
  const storedBy = (hash: string, at: number): number => {
    let n = 0
    for (const t of sim.storedAt.get(`settle_requested:${hash}`)?.values() ?? []) if (t <= at) n++
    return n
  }
  // Who took each edge decision, and which leaders committed which settle records themselves (as
  // opposed to serving one they gathered from other members when they took over).
  const recorded = new Map<string, string>()
  const committedBy = new Set<string>()
  const origin = (leader: string, hash: string): string => (committedBy.has(`${leader}|${hash}`) ? 'committed' : 'gathered')
  for (const { at, agent, action } of sim.log) {
    if (action.type === 'committed' && action.record.type === 'settle_requested') committedBy.add(`${agent}|${hex(action.record.hash)}`)
    if (action.type === 'send' && action.message.type === 'htlc-decision' && action.message.resolution.kind === 'settle') {
      const hash = hex(sha256(action.message.resolution.preimage))
      const held = storedBy(hash, at)
      const storedAt = sim.storedAt.get(`settle_requested:${hash}`)
      if (action.message.uncommittedRecord !== null) {
        const toCompletes = voterIds.has(action.to) && (storedAt?.get(action.to) ?? Infinity) > at ? 1 : 0
        if ((storedAt?.get(agent) ?? Infinity) > at) add('6-write-ahead', `${agent.slice(0, 8)} sent the preimage of a settle record for ${short(hash)} it had not stored itself`)
        else if (held + toCompletes < need) add('6-write-ahead', `${agent.slice(0, 8)} sent an uncommitted settle for ${short(hash)} to ${action.to.slice(0, 8)}, held by ${held} of ${voters} voters with that copy ${toCompletes === 1 ? 'to come' : 'counted'}`)
      } else if (held < need) add('6-write-ahead', `${agent.slice(0, 8)} sent the preimage of a ${origin(agent, hash)} settle record for ${short(hash)} held by ${held} of ${voters} voters`)
    }
    if (action.type === 'edge-record') {
      recorded.set(`${agent}|${action.id}`, action.from)
      // A decision recorded without an fsync of its own rests on a settle record this agent stored.
      if (action.covered && (action.decision.action !== 'settle' || (sim.storedAt.get(`settle_requested:${hex(sha256(action.decision.preimage))}`)?.get(agent) ?? Infinity) > at)) {
        add('6-write-ahead', `${agent.slice(0, 8)} recorded a decision for ${action.id} without an fsync and without a settle record of its own`)
      }
    }
    if (action.type === 'resolve') {
      const id = edgeHtlcId(action.htlc)
      const from = recorded.get(`${agent}|${id}`)
      if (from === undefined) add('6-write-ahead', `${agent.slice(0, 8)} resolved ${id} before recording the decision`)
      const hash = hex(action.htlc.paymentHash)
      const held = storedBy(hash, at)
      if (action.decision.action === 'settle' && held < need) {
        add('6-write-ahead', `${id} settled on its LND, decided by ${from?.slice(0, 8)} from a ${origin(from ?? '', hash)} settle record held by ${held} of ${voters} voters`)
      }
    }
  }
}
