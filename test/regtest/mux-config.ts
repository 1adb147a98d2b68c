// The agent configuration of the regtest mux tests: Alice and Bob from env.json, a fresh storage
// directory, the API on a free loopback port.
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import type { HighwireConfig } from '../../src/config/schema.ts'
import { node, type NodeName } from './env.ts'

export function regtestConfig(storage: string, identityKey: Uint8Array): HighwireConfig {
  const lndNode = (name: NodeName) => {
    const n = node(name)
    return { name, host: n.host, tlsCert: readFileSync(n.tlsCert), macaroon: readFileSync(n.macaroon), pubkey: n.pubkey }
  }
  return {
    network: 'regtest',
    cluster: { secret: randomBytes(32), members: [], bootstrap: [], proofTimeoutMs: 5000 },
    mux: {
      identityKey,
      routingPolicy: { feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 },
      maxRouteHints: 3,
      minFinalCltvExpiry: 40,
      mppTimeoutMs: 60_000,
      acceptTimeoutMs: 120_000,
      autoSettle: false,
      priority: 0
    },
    lnd: { nodes: [lndNode('alice'), lndNode('bob')], allowUnsafe: false },
    storage: { path: storage },
    api: { listen: { host: '127.0.0.1', port: 0 }, tls: null },
    log: { level: 'info' }
  }
}
