import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { validateConfig, agentRole, parseHostPort, type HighwireConfig } from '../../src/config/schema.ts'
import { ConfigError, type ConfigIssue } from '../../src/config/reader.ts'
import { parseDuration } from '../../src/config/duration.ts'
import { newClusterSecret, parseClusterSecret, SECRET_PLACEHOLDER } from '../../src/config/secrets.ts'
import { secp256k1 } from '../../src/ln/secp256k1.ts'

const defaults = JSON.parse(readFileSync(new URL('../../config/default.json', import.meta.url), 'utf8')) as Record<string, any>
const SECRET = newClusterSecret()

function tree(patch: (t: Record<string, any>) => void = () => {}): Record<string, any> {
  const t = structuredClone(defaults)
  t.cluster.secret = SECRET
  patch(t)
  return t
}

function issuesOf(raw: unknown): ConfigIssue[] {
  try {
    validateConfig(raw)
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    return err.issues
  }
  assert.fail('config was accepted')
}

function onlyIssue(raw: unknown, path: string, problem: RegExp): void {
  const issues = issuesOf(raw)
  assert.deepEqual(issues.map((i) => i.path), [path])
  assert.match(issues[0]!.problem, problem)
  assert.ok(issues[0]!.example.length > 0)
}

test('the defaults with a secret make a valid witness config', () => {
  const config: HighwireConfig = validateConfig(tree())
  assert.equal(config.network, 'regtest')
  assert.equal(config.mux.mppTimeoutMs, 60_000)
  assert.equal(config.mux.acceptTimeoutMs, 600_000)
  assert.deepEqual(config.mux.routingPolicy, { feeBaseMsat: 0, feeProportionalMillionths: 0, cltvExpiryDelta: 40 })
  assert.equal(config.mux.maxRouteHints, 3)
  assert.deepEqual(config.api.listen, { host: '127.0.0.1', port: 19090 })
  assert.equal(agentRole(config), 'witness')
  assert.equal(Buffer.from(config.cluster.secret).toString('hex'), SECRET)
})

test('durations: ms strings parse, anything else is an error and never zero', () => {
  assert.deepEqual(parseDuration('60s'), { ms: 60_000 })
  assert.deepEqual(parseDuration('10m'), { ms: 600_000 })
  assert.deepEqual(parseDuration('1.5h'), { ms: 5_400_000 })
  assert.deepEqual(parseDuration('250ms'), { ms: 250 })
  for (const bad of ['sixty seconds', '100', '', '-5s', 'abc', 60, null, '1e3s']) assert.ok('problem' in parseDuration(bad), String(bad))
  onlyIssue(tree((t) => (t.mux.mppTimeout = 'a minute')), 'mux.mppTimeout', /not a duration/)
  onlyIssue(tree((t) => (t.mux.acceptTimeout = 30)), 'mux.acceptTimeout', /duration string/)
})

test('the cluster secret: placeholder, short, weak and malformed values are refused without being echoed', () => {
  const cases: [string, RegExp][] = [
    [SECRET_PLACEHOLDER, /placeholder/],
    ['00112233', /4 bytes/],
    ['ab'.repeat(32), /does not look random/],
    [Buffer.from('password'.repeat(4)).toString('base64'), /does not look random/],
    ['not hex, not base64!', /neither hex nor base64/]
  ]
  for (const [secret, problem] of cases) {
    const issues = issuesOf(tree((t) => (t.cluster.secret = secret)))
    assert.equal(issues.length, 1)
    assert.equal(issues[0]!.path, 'cluster.secret')
    assert.match(issues[0]!.problem, problem)
    assert.ok(!JSON.stringify(issues).includes(secret), 'the secret value must not appear in the error')
  }
  const base64 = Buffer.from(SECRET, 'hex').toString('base64')
  assert.ok('value' in parseClusterSecret(base64))
})

test('cluster.voters: agent keys, each once, each in cluster.members when that is set', () => {
  const [a, b, c] = ['aa', 'bb', 'cc'].map((x) => x.repeat(32)) as [string, string, string]
  assert.deepEqual(validateConfig(tree((t) => (t.cluster.voters = [a, b.toUpperCase()]))).cluster.voters, [a, b])
  assert.deepEqual(validateConfig(tree()).cluster.voters, [], 'empty by default: learnt from hellos')
  const issues = issuesOf(tree((t) => {
    t.cluster.members = [a, b]
    t.cluster.voters = [a, 'nope', a, c]
  }))
  assert.deepEqual(issues.map((i) => [i.path, i.problem]), [
    ['cluster.voters[1]', 'must be a 32-byte agent public key as 64 hex characters'],
    ['cluster.voters[2]', `${a} is listed twice`],
    ['cluster.voters[3]', `${c} is not in cluster.members`]
  ])
})

test('the identity key makes a candidate; a bad one is refused without being echoed', () => {
  const key = 'aa'.repeat(31) + '01'
  const config = validateConfig(tree((t) => (t.mux.identityKey = key)))
  assert.equal(agentRole(config), 'candidate')
  const bad = 'ff'.repeat(32) // above the curve order
  const issues = issuesOf(tree((t) => (t.mux.identityKey = bad)))
  assert.deepEqual(issues.map((i) => i.path), ['mux.identityKey'])
  assert.ok(!JSON.stringify(issues).includes(bad))
  onlyIssue(tree((t) => (t.mux.identityKey = 'abc')), 'mux.identityKey', /64 hex/)
})

test('lnd nodes: files, inline PEM and hex macaroons are read; each bad field is named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'highwire-config-'))
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
  writeFileSync(join(dir, 'tls.cert'), pem)
  writeFileSync(join(dir, 'admin.macaroon'), Buffer.from('0201036c6e64', 'hex'))
  const pubkey = Buffer.from(secp256k1.publicKey(Buffer.alloc(32, 7))).toString('hex')
  const node = { name: 'alice', host: '127.0.0.1:10009', tlsCert: join(dir, 'tls.cert'), macaroon: join(dir, 'admin.macaroon'), pubkey }
  const config = validateConfig(tree((t) => (t.lnd.nodes = [node, { ...node, name: 'bob', pubkey: pubkey.replace(/^0./, (p) => (p === '02' ? '03' : '02')), tlsCert: Buffer.from(pem).toString('base64'), macaroon: '02'.repeat(24) }])))
  assert.equal(agentRole(config), 'edge')
  assert.equal(config.lnd.nodes[0]!.tlsCert.toString(), pem)
  assert.deepEqual(config.lnd.nodes[0]!.macaroon, Buffer.from('0201036c6e64', 'hex'))
  assert.equal(config.lnd.nodes[1]!.tlsCert.toString(), pem)
  assert.deepEqual(config.lnd.nodes[1]!.macaroon, Buffer.from('02'.repeat(24), 'hex'))

  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, host: 'localhost' }])), 'lnd.nodes[0].host', /host:port/)
  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, tlsCert: join(dir, 'missing.cert') }])), 'lnd.nodes[0].tlsCert', /ENOENT/)
  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, macaroon: 'nope' }])), 'lnd.nodes[0].macaroon', /no such file/)
  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, pubkey: '04' + '11'.repeat(32) }])), 'lnd.nodes[0].pubkey', /compressed/)
  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, name: 'Alice Node' }])), 'lnd.nodes[0].name', /a-z/)
  onlyIssue(tree((t) => (t.lnd.nodes = [node, { ...node }])), 'lnd.nodes[1]', /repeats/)
  onlyIssue(tree((t) => (t.lnd.nodes = [{ ...node, macaroonPath: 'x' }])), 'lnd.nodes[0].macaroonPath', /not a known key/)
})

test('unknown keys, wrong types and every problem at once are reported', () => {
  const issues = issuesOf(tree((t) => {
    t.netwrok = 'regtest'
    t.network = 'bitcoin'
    t.mux.maxRouteHints = 0
    t.mux.autoSettle = 'yes'
    t.log.level = 'verbose'
  }))
  assert.deepEqual(issues.map((i) => i.path).sort(), ['log.level', 'mux.autoSettle', 'mux.maxRouteHints', 'network', 'netwrok'])
})

test('the API listens in plaintext on loopback only', () => {
  onlyIssue(tree((t) => (t.api.listen = '0.0.0.0:19090')), 'api.listen', /loopback/)
  assert.equal(validateConfig(tree((t) => (t.api.listen = '[::1]:19090'))).api.listen.host, '::1')
  assert.deepEqual(parseHostPort('example.org:443'), { host: 'example.org', port: 443 })
  assert.equal(parseHostPort('example.org:70000'), null)
})

test('configWithDefaults: the defaults of config/default.json with whole sections patched', async () => {
  const { configWithDefaults } = await import('../../src/config/defaults.ts')
  const secret = Buffer.from(newClusterSecret(), 'hex')
  const config = configWithDefaults({ cluster: { secret }, mux: { mppTimeoutMs: 5000 }, storage: { path: '/tmp/x' } })
  assert.deepEqual(config.cluster.secret, secret)
  assert.equal(config.mux.mppTimeoutMs, 5000)
  assert.equal(config.mux.acceptTimeoutMs, 600_000, 'keys the patch does not name keep their default')
  assert.deepEqual(config.mux.routingPolicy, { feeBaseMsat: 0, feeProportionalMillionths: 0, cltvExpiryDelta: 40 })
  assert.equal(config.storage.path, '/tmp/x')
  assert.deepEqual(config.api.listen, { host: '127.0.0.1', port: 19090 })
})
