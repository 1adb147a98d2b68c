// btcd on regtest, bound to loopback, and btcctl against it.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFileSync, existsSync } from 'node:fs'
import path from 'node:path'

const run = promisify(execFile)

export interface BtcdSpec {
  dir: string
  p2pPort: number
  rpcPort: number
  rpcUser: string
  rpcPass: string
  miningAddress?: string
}

export const btcdRpcCert = (spec: BtcdSpec): string => path.join(spec.dir, 'rpc.cert')
export const btcdDebugLog = (spec: BtcdSpec): string => path.join(spec.dir, 'logs', 'regtest', 'btcd.log')

// Both tools create a default config in ~/.btcd or ~/.btcctl when theirs is
// missing; an empty file of our own keeps everything under .regtest/.
function emptyConfig (spec: BtcdSpec, name: string): string {
  const file = path.join(spec.dir, name)
  if (!existsSync(file)) writeFileSync(file, '')
  return file
}

export function btcdArgs (spec: BtcdSpec): string[] {
  return [
    `--configfile=${emptyConfig(spec, 'btcd.conf')}`,
    '--regtest',
    `--datadir=${path.join(spec.dir, 'data')}`,
    `--logdir=${path.join(spec.dir, 'logs')}`,
    `--rpccert=${btcdRpcCert(spec)}`,
    `--rpckey=${path.join(spec.dir, 'rpc.key')}`,
    `--rpcuser=${spec.rpcUser}`,
    `--rpcpass=${spec.rpcPass}`,
    `--rpclisten=127.0.0.1:${spec.rpcPort}`,
    `--listen=127.0.0.1:${spec.p2pPort}`,
    // lnd's btcd backend looks up transactions by id (e.g. funding outputs).
    '--txindex',
    // `generate` needs a payout address; btcd has no generatetoaddress.
    ...(spec.miningAddress === undefined ? [] : [`--miningaddr=${spec.miningAddress}`])
  ]
}

export async function btcctl (btcctlBin: string, spec: BtcdSpec, args: string[]): Promise<string> {
  const { stdout } = await run(btcctlBin, [
    `--configfile=${emptyConfig(spec, 'btcctl.conf')}`,
    '--regtest',
    `--rpcserver=127.0.0.1:${spec.rpcPort}`,
    `--rpcuser=${spec.rpcUser}`,
    `--rpcpass=${spec.rpcPass}`,
    `--rpccert=${btcdRpcCert(spec)}`,
    ...args
  ], { maxBuffer: 64 * 1024 * 1024 })
  return stdout.trim()
}
