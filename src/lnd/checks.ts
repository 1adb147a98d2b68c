// Start-up checks of one LND node, run before the agent intercepts anything on it. Each failure
// names the node and says what to change: a wrong answer here means intercepting the wrong
// node's HTLCs, on the wrong chain, or losing HTLCs whenever the agent disconnects.
import type { Network } from '../config/schema.ts'
import { LndError } from './errors.ts'
import type { LndClient, NodeInfo } from './client.ts'

export interface StartupExpectations {
  network: Network
  // lnd.allowUnsafe: run on a node without --requireinterceptor or
  // --store-final-htlc-resolutions (experiments only). Turns those two refusals into warnings.
  allowUnsafe: boolean
}

export interface StartupReport {
  info: NodeInfo
  warnings: string[]
}

// lnd reports the chain backend it serves in GetInfo.chains (one entry; lnd only supports
// bitcoin since v0.18) with the network as chaincfg names it.
const BITCOIN = 'bitcoin'

// Pure: judges a GetInfo answer. Throws the first hard failure, returns the warnings.
export function checkNodeInfo (node: string, pinnedPubkey: string, info: NodeInfo, expect: StartupExpectations): string[] {
  if (info.identityPubkey !== pinnedPubkey) {
    throw new LndError('pubkey_mismatch', node, `identity pubkey is ${info.identityPubkey}, but the configuration pins ${pinnedPubkey}: wrong host, or wrong pubkey in the config`)
  }
  const chain = info.chains[0]
  if (info.chains.length !== 1 || chain === undefined) {
    throw new LndError('network_mismatch', node, `GetInfo lists ${info.chains.length} chains, expected exactly one`)
  }
  // `chain` is deprecated in the proto and may be empty in future lnd; when set it must be bitcoin.
  if (chain.chain !== '' && chain.chain !== BITCOIN) {
    throw new LndError('network_mismatch', node, `runs on chain ${chain.chain}, expected ${BITCOIN}`)
  }
  if (chain.network !== expect.network) {
    throw new LndError('network_mismatch', node, `runs on ${chain.network}, but the configuration says network ${expect.network}`)
  }
  const warnings: string[] = []
  // Without --requireinterceptor, lnd resumes every held HTLC when our stream drops and
  // forwards new ones without asking: HTLCs for the virtual channel then fail with
  // unknown_next_peer and payers give up (htlcswitch/interceptable_switch.go, setInterceptor).
  if (!info.requireHtlcInterceptor) {
    const message = 'lnd runs without --requireinterceptor: HTLCs are released whenever the agent disconnects'
    if (!expect.allowUnsafe) throw new LndError('interceptor_not_required', node, `${message}; restart lnd with --requireinterceptor (or set lnd.allowUnsafe for experiments)`)
    warnings.push(`lnd ${node}: ${message} (allowed by lnd.allowUnsafe)`)
  }
  // Without --store-final-htlc-resolutions, LookupHtlcResolution is unavailable and the final
  // fate of an HTLC settled while we were disconnected cannot be learned.
  if (!info.storeFinalHtlcResolutions) {
    const message = 'lnd runs without --store-final-htlc-resolutions: final HTLC outcomes cannot be looked up'
    if (!expect.allowUnsafe) throw new LndError('final_resolutions_not_stored', node, `${message}; restart lnd with --store-final-htlc-resolutions (or set lnd.allowUnsafe for experiments)`)
    warnings.push(`lnd ${node}: ${message} (allowed by lnd.allowUnsafe)`)
  }
  if (!info.syncedToChain) warnings.push(`lnd ${node}: not synced to chain yet (block ${info.blockHeight})`)
  return warnings
}

export async function runStartupChecks (client: LndClient, expect: StartupExpectations): Promise<StartupReport> {
  const info = await client.getInfo()
  const warnings = checkNodeInfo(client.name, client.pubkey, info, expect)
  return { info, warnings }
}
