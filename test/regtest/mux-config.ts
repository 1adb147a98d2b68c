// The agent configuration of the regtest mux tests: Alice and Bob from env.json, a fresh storage
// directory, the API on a free loopback port.
import { readFileSync } from 'node:fs'
import type { HighwireConfig } from '../../src/config/schema.ts'
import { configWithDefaults } from '../../src/config/defaults.ts'
import { node, type NodeName } from './env.ts'

export function regtestConfig(storage: string, identityKey: Uint8Array): HighwireConfig {
  const lndNode = (name: NodeName) => {
    const n = node(name)
    return { name, host: n.host, tlsCert: readFileSync(n.tlsCert), macaroon: readFileSync(n.macaroon), pubkey: n.pubkey }
  }
  return configWithDefaults({
    mux: {
      identityKey,
      routingPolicy: { feeBaseMsat: 1000, feeProportionalMillionths: 100, cltvExpiryDelta: 40 },
      minFinalCltvExpiry: 40,
      acceptTimeoutMs: 120_000
    },
    lnd: { nodes: [lndNode('alice'), lndNode('bob')] },
    storage: { path: storage },
    api: { listen: { host: '127.0.0.1', port: 0 } }
  })
}
