import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkNodeInfo } from '../../src/lnd/checks.ts'
import { toNodeInfo, type NodeInfo } from '../../src/lnd/client.ts'
import { LndError } from '../../src/lnd/errors.ts'

const PUBKEY = '02' + '11'.repeat(32)

// A GetInfo answer as proto-loader delivers it from lnd v0.21 on regtest (fields this code reads).
function getInfo (over: Record<string, unknown> = {}): NodeInfo {
  return toNodeInfo({
    identity_pubkey: PUBKEY,
    alias: 'alice',
    version: '0.21.2-beta commit=v0.21.2-beta',
    block_height: 432,
    block_hash: '00'.repeat(32),
    synced_to_chain: true,
    chains: [{ chain: 'bitcoin', network: 'regtest' }],
    require_htlc_interceptor: true,
    store_final_htlc_resolutions: true,
    ...over
  } as Parameters<typeof toNodeInfo>[0])
}

const strict = { network: 'regtest', allowUnsafe: false } as const

function failsWith (code: string, node: string, fragment: string) {
  return (err: unknown) => err instanceof LndError && err.code === code && err.node === node &&
    err.message.startsWith(`lnd ${node}: `) && err.message.includes(fragment)
}

test('a well-configured node passes without warnings', () => {
  assert.deepEqual(checkNodeInfo('alice', PUBKEY, getInfo(), strict), [])
})

test('a different identity pubkey is refused, naming both keys', () => {
  const other = '03' + '22'.repeat(32)
  assert.throws(() => checkNodeInfo('alice', PUBKEY, getInfo({ identity_pubkey: other }), strict), failsWith('pubkey_mismatch', 'alice', other))
})

test('network and chain must match the configuration', () => {
  assert.throws(() => checkNodeInfo('alice', PUBKEY, getInfo({ chains: [{ chain: 'bitcoin', network: 'testnet' }] }), strict), failsWith('network_mismatch', 'alice', 'runs on testnet'))
  assert.throws(() => checkNodeInfo('alice', PUBKEY, getInfo({ chains: [{ chain: 'litecoin', network: 'regtest' }] }), strict), failsWith('network_mismatch', 'alice', 'litecoin'))
  assert.throws(() => checkNodeInfo('alice', PUBKEY, getInfo({ chains: [] }), strict), failsWith('network_mismatch', 'alice', '0 chains'))
  // The deprecated `chain` field may be empty; the network still decides.
  assert.deepEqual(checkNodeInfo('alice', PUBKEY, getInfo({ chains: [{ chain: '', network: 'regtest' }] }), strict), [])
})

test('interceptor and final-resolution flags are required unless allowUnsafe', () => {
  const noInterceptor = getInfo({ require_htlc_interceptor: false })
  const noFinal = getInfo({ store_final_htlc_resolutions: false })
  assert.throws(() => checkNodeInfo('carol', PUBKEY, noInterceptor, strict), failsWith('interceptor_not_required', 'carol', '--requireinterceptor'))
  assert.throws(() => checkNodeInfo('carol', PUBKEY, noFinal, strict), failsWith('final_resolutions_not_stored', 'carol', '--store-final-htlc-resolutions'))
  const unsafe = { network: 'regtest', allowUnsafe: true } as const
  const warnings = checkNodeInfo('carol', PUBKEY, getInfo({ require_htlc_interceptor: false, store_final_htlc_resolutions: false }), unsafe)
  assert.equal(warnings.length, 2)
  assert.ok(warnings.every(w => w.startsWith('lnd carol: ') && w.includes('lnd.allowUnsafe')))
})

test('allowUnsafe never excuses a wrong identity or network', () => {
  const unsafe = { network: 'regtest', allowUnsafe: true } as const
  assert.throws(() => checkNodeInfo('alice', '03' + '33'.repeat(32), getInfo(), unsafe), failsWith('pubkey_mismatch', 'alice', 'pins'))
  assert.throws(() => checkNodeInfo('alice', PUBKEY, getInfo(), { network: 'mainnet', allowUnsafe: true }), failsWith('network_mismatch', 'alice', 'mainnet'))
})

test('an unsynced node passes with a warning', () => {
  assert.deepEqual(checkNodeInfo('alice', PUBKEY, getInfo({ synced_to_chain: false }), strict), ['lnd alice: not synced to chain yet (block 432)'])
})
