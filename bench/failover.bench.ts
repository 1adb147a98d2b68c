// Fail-over time: two operators (A holding Alice, B holding Bob, both candidates) and a witness, each
// agent its own process on a local DHT testnet. The serving leader is killed with SIGKILL (no goodbye:
// the others learn only from its silence) and the clock runs until a surviving agent reports
// `serving` over the status RPC. The killed agent is restarted and rejoins before the next run.
// Compared with DESIGN.md's 5 s target and lnmux's 60 s Kubernetes lease.
// Then the same right after a rolling restart: a follower is killed and started again, and the
// leader is killed a second later, while the others may still hold the follower's dead connection.
import { DEFAULT_TIMING } from '../src/cluster/member.ts'
import { SimCluster, type BenchAgent } from './cluster-fixture.ts'
import type { Emit } from './index.ts'
import { quantile } from './measure.ts'

const RUNS = 5
/** From a follower's restart to the leader's SIGKILL, in the after-restart runs. */
const AFTER_RESTART_MS = 1000
const DOWN_MS = 500
const POLL_MS = 20
const TARGET_MS = 5000
const LNMUX_LEASE_MS = 60_000

async function untilServing(agents: BenchAgent[], limitMs: number): Promise<BenchAgent> {
  const started = Date.now()
  for (;;) {
    const statuses = await Promise.all(agents.map((a) => a.status().catch(() => null)))
    const serving = agents.find((_, i) => statuses[i]?.serving === true)
    if (serving) return serving
    if (Date.now() - started > limitMs) throw new Error(`no agent serving ${limitMs} ms after the leader died`)
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

export default async function (emit: Emit): Promise<void> {
  const cluster = await SimCluster.start([
    { name: 'A', node: 'alice', candidate: true },
    { name: 'B', node: 'bob', candidate: true },
    { name: 'W', node: null, candidate: false }
  ])
  try {
    /** Kills the serving leader (after `before`, given the followers) and times a survivor serving. */
    const failOver = async (before: (followers: BenchAgent[], run: number) => Promise<void>): Promise<number[]> => {
      const times: number[] = []
      for (let run = 0; run < RUNS; run++) {
        const leader = await cluster.settled()
        const survivors = cluster.agents.filter((a) => a !== leader)
        await before(survivors, run)
        const killedAt = performance.now()
        await leader.kill()
        await untilServing(survivors, 4 * TARGET_MS)
        times.push(performance.now() - killedAt)
        await leader.start()
      }
      return times
    }
    const context = { runs: RUNS, lease_ms: DEFAULT_TIMING.leaseMs, election_timeout_ms: DEFAULT_TIMING.electionTimeoutMs.join('-'), target_ms: TARGET_MS, reference_lnmux_lease_ms: LNMUX_LEASE_MS }
    const report = (name: string, times: number[], extra: Record<string, unknown> = {}): void => {
      const sorted = [...times].sort((a, b) => a - b)
      emit(`${name}_median_ms`, quantile(sorted, 0.5), 'ms', { ...context, ...extra })
      emit(`${name}_max_ms`, sorted.at(-1)!, 'ms', { ...context, ...extra, all_ms: times.map((t) => Math.round(t)) })
    }
    report('failover', await failOver(async () => {}))
    report('failover_after_restart', await failOver(async (followers, run) => {
      const restarted = followers[run % followers.length]!
      await restarted.kill()
      await new Promise((r) => setTimeout(r, DOWN_MS))
      await restarted.start()
      await new Promise((r) => setTimeout(r, AFTER_RESTART_MS))
    }), { follower_down_ms: DOWN_MS, leader_killed_after_restart_ms: AFTER_RESTART_MS })
  } finally {
    await cluster.close()
  }
}
