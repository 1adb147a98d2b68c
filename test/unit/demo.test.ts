// `node src demo` as a newcomer runs it: a real process, three agents on a local DHT, simulated LND
// over real gRPC, the lnmux API.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

test('node src demo: a multi-part payment across two operators, then a leader fail-over', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const result = spawnSync(process.execPath, ['src', 'demo'], { cwd: root, encoding: 'utf8', timeout: 120_000 })
  assert.equal(result.status, 0, result.stdout + result.stderr)
  const out = result.stdout
  assert.match(out, /\[A\] htlc intercepted node=alice .*amountMsat=800000000/)
  assert.match(out, /\[B\] htlc intercepted node=bob .*amountMsat=700000000/)
  assert.match(out, /set accepted .*amountMsat=1500000000 parts=2/)
  assert.match(out, /carol's payment: settled \+ settled; preimage [0-9a-f]{16}/)
  assert.match(out, /WaitForInvoiceFinalStatus: SETTLED/)
  const failover = /agent [AB] serves the virtual node (\d+) ms after the leader died/.exec(out)
  assert.ok(failover, 'no fail-over line')
  assert.ok(Number(failover[1]) <= 5000, `fail-over took ${failover[1]} ms`)
  assert.match(out, /carol's second payment: settled \+ settled/)
})
