// What regtest tests import: the running network's env.json and helpers to
// drive it. `npm run test:regtest` brings the network up before any test runs.
import { readEnv, lncli, mine, stopNode, startNode, type NodeName, type LndNodeConfig, type ChannelInfo, type RegtestEnv } from '../../scripts/regtest/network.ts'

export { lncli, mine, stopNode, startNode }
export type { NodeName, LndNodeConfig, ChannelInfo, RegtestEnv }

export const env: RegtestEnv = readEnv()

export function node (name: NodeName): LndNodeConfig {
  const n = env.nodes.find((x) => x.name === name)
  if (n === undefined) throw new Error(`env.json has no node ${name}`)
  return n
}

export function channel (from: NodeName, to: NodeName): ChannelInfo {
  const c = env.channels.find((x) => x.from === from && x.to === to)
  if (c === undefined) throw new Error(`env.json has no channel ${from}→${to}`)
  return c
}
