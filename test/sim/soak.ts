// npm run soak -- --seeds N [--from S] [--agents A] [--verbose]
// Runs seeded fault scenarios (test/sim/scenario.ts) and prints the seeds run, scenarios per second,
// faults injected by kind and every invariant violation with the one-line command that replays it.
// Exits 1 when a violation is not one of the known, reported issues (test/sim/known.ts).
import { parseArgs } from 'node:util'
import { runScenario, type ScenarioReport } from './scenario.ts'
import { knownIssue } from './known.ts'

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: '1' },
    agents: { type: 'string' },
    verbose: { type: 'boolean', default: false }
  }
})

function integer(name: string, text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`)
    process.exit(2)
  }
  return n
}

const seeds = integer('seeds', values.seeds)
const from = integer('from', values.from)
const agents = values.agents === undefined ? undefined : integer('agents', values.agents)
const agentsArg = agents === undefined ? '' : ` --agents ${agents}`
const reproduce = (seed: number): string => `npm run soak -- --seeds 1 --from ${seed}${agentsArg} --verbose`

/** A violation without its hashes, circuit ids and numbers: one line per kind of breach. */
const signature = (invariant: string, detail: string): string => `${invariant}: ${detail.replace(/[0-9a-f]{8,}\S*/g, '…').replace(/\d+/g, 'N')}`

const faults = new Map<string, number>()
const groups = new Map<string, { seeds: number[] }>()
let replays = 0
let simulatedMs = 0
let settled = 0
let payments = 0
let failedSeeds = 0
let newSeeds = 0
const started = performance.now()
for (let seed = from; seed < from + seeds; seed++) {
  let report: ScenarioReport
  try {
    report = runScenario(seed, { agents })
  } catch (err) {
    console.error(`seed ${seed}: ${(err as Error).message}`)
    process.exit(2)
  }
  for (const [kind, n] of report.faults) faults.set(kind, (faults.get(kind) ?? 0) + n)
  replays += report.replays
  simulatedMs += report.simulatedMs
  settled += report.settledPayments
  payments += report.payments
  if (report.violations.length > 0) failedSeeds++
  let fresh = false
  for (const v of report.violations) {
    const known = knownIssue(v, report.violations)?.name
    if (known === undefined) fresh = true
    const key = `${known === undefined ? 'NEW' : 'known'} ${signature(v.invariant, v.detail)}${known === undefined ? '' : `\n        known issue: ${known}`}`
    const group = groups.get(key) ?? { seeds: [] }
    if (group.seeds.at(-1) !== seed) group.seeds.push(seed)
    groups.set(key, group)
  }
  if (fresh) newSeeds++
  if (values.verbose) {
    console.log(`seed ${seed}: ${report.roles}, ${report.nodes} nodes, ${report.payments} payments (${report.settledPayments} settled), ${report.profile} network, leader killed at ${report.killStep}`)
    for (const v of report.violations) console.log(`  ${v.invariant}: ${v.detail}`)
  }
}
const seconds = (performance.now() - started) / 1000

console.log(`seeds run: ${seeds} (${from}..${from + seeds - 1})${agentsArg}`)
console.log(`time: ${seconds.toFixed(1)} s, ${(seeds / seconds).toFixed(1)} scenarios/s, ${(simulatedMs / 3_600_000).toFixed(2)} simulated hours`)
console.log(`payments: ${payments}, settled: ${settled}, resolutions replayed alike: ${replays}`)
console.log('faults injected:')
for (const [kind, n] of [...faults].sort((a, b) => b[1] - a[1])) console.log(`  ${kind.padEnd(36)} ${n}`)
console.log(`violations: ${failedSeeds} seeds with any, ${newSeeds} with one not known`)
for (const [key, { seeds: hit }] of [...groups].sort((a, b) => b[1].seeds.length - a[1].seeds.length)) {
  console.log(`  ${hit.length} seeds  ${key}`)
  console.log(`        reproduce: ${reproduce(hit[0]!)}   (seeds ${hit.slice(0, 10).join(', ')}${hit.length > 10 ? ', …' : ''})`)
}
process.exitCode = newSeeds > 0 ? 1 : 0
