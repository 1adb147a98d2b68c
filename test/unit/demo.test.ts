// `node src demo` as a newcomer runs it: a real process, simulated LND over real gRPC.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

test('node src demo pays one invoice in two parts through two nodes and settles it', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const result = spawnSync(process.execPath, ['src', 'demo'], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  assert.equal(result.status, 0, result.stdout + result.stderr)
  const out = result.stdout
  assert.match(out, /htlc intercepted node=alice .*amountMsat=800000000/)
  assert.match(out, /htlc intercepted node=bob .*amountMsat=700000000/)
  assert.match(out, /set accepted .*amountMsat=1500000000 parts=2/)
  assert.match(out, /carol's payment: settled \+ settled; preimage [0-9a-f]{64}/)
  assert.match(out, /WaitForInvoiceFinalStatus: SETTLED/)
})
