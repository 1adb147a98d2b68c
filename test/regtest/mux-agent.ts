// The agent of test/regtest/mux.test.ts as a process of its own, so that the test can kill it with
// SIGKILL: no close, no agent_stop record, streams cut by the kernel. Arguments: the storage
// directory and the identity key (hex). Prints {"port": n} once the API listens; logs to stderr.
import { Agent } from '../../src/agent/runtime.ts'
import { createLogger } from '../../src/log.ts'
import { regtestConfig } from './mux-config.ts'

const [storage, identityKeyHex] = process.argv.slice(2)
if (storage === undefined || identityKeyHex === undefined) throw new Error('usage: mux-agent.ts <storage> <identity key hex>')
const log = createLogger({ level: 'info', write: (line) => process.stderr.write(line + '\n') })
const agent = await Agent.start(regtestConfig(storage, Buffer.from(identityKeyHex, 'hex')), { log, heightPollMs: 500, swarm: false })
process.stdout.write(JSON.stringify({ port: agent.api!.address.port }) + '\n')
process.once('SIGTERM', () => void agent.close('SIGTERM').then(() => process.exit(0)))
