// One agent start-up, timed in a process of its own, as an operator's agent starts (startup.bench.ts):
// argv[2] the HighwireConfig (config-json.ts). Agent.start until the member serves the virtual node,
// then a clean stop. Prints one JSON line: {serveS, closeS, rssMb, heapMb, ledger} (ledger: the log
// line telling how the mux ledger was read).
import { Agent } from '../src/agent/runtime.ts'
import { createLogger } from '../src/log.ts'
import { configFromJson } from './config-json.ts'

const [configJson] = process.argv.slice(2)
if (configJson === undefined) throw new Error('usage: startup-process.ts <config json>')
const lines: string[] = []
const log = createLogger({ level: 'info', write: (line) => lines.push(line) })
const seconds = (start: number): number => (performance.now() - start) / 1000

const start = performance.now()
const agent = await Agent.start(configFromJson(configJson), { log, swarm: false })
while (agent.member.virtualNode === null) await new Promise((resolve) => setTimeout(resolve, 1))
const serveS = seconds(start)
const { rss, heapUsed } = process.memoryUsage()
const closing = performance.now()
await agent.close()
process.stdout.write(JSON.stringify({
  serveS,
  closeS: seconds(closing),
  rssMb: Math.round(rss / 1e6),
  heapMb: Math.round(heapUsed / 1e6),
  ledger: lines.find((l) => /mux (ledger loaded|snapshot refused)/.test(l)) ?? ''
}) + '\n')
