// `node src run`: load and validate the config, then start the agent. A config problem stops here,
// before anything starts, with one line per problem.
import { loadConfig } from '../config/load.ts'
import { ConfigError } from '../config/reader.ts'
import { agentRole, type HighwireConfig } from '../config/schema.ts'
import { createLogger } from '../log.ts'
import { secp256k1 } from '../ln/secp256k1.ts'
import { Agent } from '../agent/runtime.ts'

export async function runCommand(_args: string[], printError: (line: string) => void): Promise<number> {
  let config: HighwireConfig
  try {
    config = await loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    for (const issue of err.message.split('\n')) printError(issue)
    printError(`${err.issues.length} config problem(s); nothing was started`)
    return 2
  }
  const log = createLogger({ level: config.log.level })
  log.info('config valid', {
    network: config.network,
    role: agentRole(config),
    mux: config.mux.identityKey ? secp256k1.publicKey(config.mux.identityKey) : undefined,
    nodes: config.lnd.nodes.map((n) => n.name).join(',') || undefined,
    api: `${config.api.listen.host}:${config.api.listen.port}`,
    storage: config.storage.path
  })
  let agent: Agent
  try {
    agent = await Agent.start(config, { log })
  } catch (err) {
    log.error('agent did not start', { error: err as Error })
    return 1
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  log.info('stopping', { signal })
  await agent.close(signal)
  return 0
}
