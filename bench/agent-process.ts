// One highwire agent as a process of its own, for the cluster benchmarks: each agent gets its own
// event loop (as in production) and can be killed with SIGKILL. argv[2] is the HighwireConfig as
// JSON with bytes as {"hex": "..."} (config-json.ts); argv[3] the member timing. Prints
// {"id", "port"} once the API listens; logs warnings and errors to stderr.
import { Agent } from '../src/agent/runtime.ts'
import type { MemberTiming } from '../src/cluster/member.ts'
import { createLogger } from '../src/log.ts'
import { configFromJson } from './config-json.ts'

const [configJson, timingJson] = process.argv.slice(2)
if (configJson === undefined || timingJson === undefined) throw new Error('usage: agent-process.ts <config json> <timing json>')
const config = configFromJson(configJson)
const log = createLogger({ level: 'warn', write: (line) => process.stderr.write(line + '\n') })
const agent = await Agent.start(config, { log, heightPollMs: 500, tickMs: 20, swarm: { host: '127.0.0.1' }, timing: JSON.parse(timingJson) as MemberTiming })
process.stdout.write(JSON.stringify({ id: agent.id, port: agent.api!.address.port }) + '\n')
process.once('SIGTERM', () => void agent.close('SIGTERM').then(() => process.exit(0)))
