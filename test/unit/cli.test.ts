// The command line as an operator meets it: a real `node src` process with its own config folder.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

function configFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'highwire-cli-'))
  for (const f of ['default.json', 'custom-environment-variables.json']) copyFileSync(join(root, 'config', f), join(dir, f))
  return dir
}

function run(args: string[], dir: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(root, 'src'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', NODE_CONFIG_DIR: dir, ...env },
    encoding: 'utf8',
    timeout: 30_000
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

test('--help and help list the commands', () => {
  const dir = configFolder()
  for (const args of [['--help'], ['help']]) {
    const { status, stdout } = run(args, dir)
    assert.equal(status, 0)
    for (const command of ['run', 'init', 'decode']) assert.match(stdout, new RegExp(`^  ${command}`, 'm'))
  }
  assert.equal(run(['frobnicate'], dir).status, 2)
})

test('a fresh clone refuses to run on the placeholder secret and says what to do', () => {
  const { status, stderr } = run([], configFolder())
  assert.equal(status, 2)
  assert.match(stderr, /^config cluster\.secret: is still the default placeholder; run `node src init`/m)
  assert.match(stderr, /nothing was started/)
})

test('init writes a fresh secret (and identity key for a candidate) and never overwrites', () => {
  const dir = configFolder()
  const first = run(['init', '--candidate'], dir)
  assert.equal(first.status, 0, first.stderr)
  const file = join(dir, 'local.json')
  const local = JSON.parse(readFileSync(file, 'utf8'))
  assert.match(local.cluster.secret, /^[0-9a-f]{64}$/)
  assert.match(local.mux.identityKey, /^[0-9a-f]{64}$/)
  assert.equal(statSync(file).mode & 0o777, 0o600)
  assert.ok(!first.stdout.includes(local.cluster.secret) && !first.stdout.includes(local.mux.identityKey), 'init must not print secrets')
  const again = run(['init'], dir)
  assert.equal(again.status, 1)
  assert.match(again.stderr, /refusing to overwrite/)
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), local)

  const other = configFolder()
  assert.equal(run(['init', '--secret', local.cluster.secret], other).status, 0)
  assert.equal(JSON.parse(readFileSync(join(other, 'local.json'), 'utf8')).cluster.secret, local.cluster.secret)
  assert.equal(run(['init', '--secret', 'ab'.repeat(32)], configFolder()).status, 2)
})

test('a bad value exits non-zero naming the key path, without echoing secrets', () => {
  const dir = configFolder()
  const secret = 'c0ffee' + '0123456789abcdef'.repeat(4).slice(6)
  writeFileSync(join(dir, 'local.json'), JSON.stringify({ cluster: { secret: secret.slice(0, 40) }, mux: { mppTimeout: 'one minute' } }))
  const { status, stderr } = run([], dir)
  assert.equal(status, 2)
  assert.match(stderr, /^config cluster\.secret: decodes to 20 bytes/m)
  assert.match(stderr, /^config mux\.mppTimeout: "one minute" is not a duration \(example: "60s"\)/m)
  assert.ok(!stderr.includes(secret.slice(0, 40)))
})

test('HIGHWIRE_SECRET and HIGHWIRE_IDENTITY_KEY override the files', () => {
  const dir = configFolder()
  const secret = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)).toString('hex')
  const { stderr } = run([], dir, { HIGHWIRE_SECRET: secret, HIGHWIRE_IDENTITY_KEY: '11'.repeat(32) })
  assert.match(stderr, /config valid .*role=candidate/)
  assert.ok(!stderr.includes(secret) && !stderr.includes('11'.repeat(32)))
})

test('init --regtest takes the cluster nodes from the regtest network, and says so when it is not up', () => {
  const regtest = mkdtempSync(join(tmpdir(), 'highwire-regtest-'))
  const missing = run(['init', '--candidate', '--regtest'], configFolder(), { HIGHWIRE_REGTEST_DIR: regtest })
  assert.equal(missing.status, 1)
  assert.match(missing.stderr, /--regtest needs .*env\.json; run `npm run regtest -- up` first/)
  const node = (name: string) => ({ name, host: '127.0.0.1:10009', tlsCert: '/x/tls.cert', macaroon: '/x/admin.macaroon', pubkey: '02' + '11'.repeat(32) })
  writeFileSync(join(regtest, 'env.json'), JSON.stringify({ nodes: [node('alice'), node('bob'), node('carol')] }))
  const dir = configFolder()
  const { status, stdout } = run(['init', '--candidate', '--regtest'], dir, { HIGHWIRE_REGTEST_DIR: regtest })
  assert.equal(status, 0)
  assert.match(stdout, /lnd nodes: alice, bob/)
  const local = JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8'))
  assert.equal(local.network, 'regtest')
  assert.deepEqual(local.lnd.nodes, [node('alice'), node('bob')])
})
