// The cluster transport on a local DHT testnet bound to 127.0.0.1.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n))
import createTestnet, { type Testnet } from 'hyperdht/testnet.js'
import DHT from 'hyperdht'
import Protomux from 'protomux'
import Corestore from 'corestore'
import c from 'compact-encoding'
import { ClusterSwarm, CHANNEL_PROTOCOL, type ClusterSwarmOptions, type LocalHello, type RejectEvent } from '../../src/cluster/swarm.ts'
import { deriveAuthKey, secretProof } from '../../src/cluster/auth.ts'
import { decodeEnvelope, encodeEnvelope, sealEnvelope, verifyEnvelope, MAX_ENVELOPE_BYTES, type AgentKeyPair, type Envelope } from '../../src/cluster/envelope.ts'
import { loadOrCreateAgentKeyPair, AGENT_KEY_FILE } from '../../src/cluster/keys.ts'
import { ClusterError } from '../../src/cluster/errors.ts'
import { SequenceAllocator, SEQUENCE_BLOCK, SEQUENCE_FILE } from '../../src/cluster/sequence.ts'
import { PROTOCOL_VERSION, type Hello, type Message } from '../../src/cluster/messages.ts'
import type { PeerStatus } from '../../src/cluster/peers.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const secret = rand(32)
const muxKey = rand(33)

/** Teardown in reverse order of setup (t.after runs hooks first-in first-out): swarms before the testnet. */
function cleanup(t: TestContext): (fn: () => Promise<unknown>) => void {
  const stack: Array<() => Promise<unknown>> = []
  t.after(async () => {
    while (stack.length > 0) await stack.pop()!()
  })
  return (fn) => stack.push(fn)
}

const teardowns = new WeakMap<TestContext, (fn: () => Promise<unknown>) => void>()
function defer(t: TestContext, fn: () => Promise<unknown>): void {
  if (!teardowns.has(t)) teardowns.set(t, cleanup(t))
  teardowns.get(t)!(fn)
}

async function testnet(t: TestContext): Promise<Testnet> {
  const net = await createTestnet(3, { host: '127.0.0.1' })
  defer(t, () => net.destroy())
  return net
}

function localHello(role: LocalHello['role'] = 'candidate'): LocalHello {
  return {
    role,
    priority: 1,
    muxKey,
    nodes: [{ pubkey: rand(33), alias: 'alice', virtualScid: 0x8000_0000_0000_0abcn, inboundMsat: 10_000_000n }],
    auditCore: rand(32)
  }
}

async function agent(t: TestContext, net: Testnet, opts: Partial<ClusterSwarmOptions> = {}): Promise<ClusterSwarm> {
  const storage = await mkdtemp(join(tmpdir(), 'highwire-cluster-'))
  const swarm = await ClusterSwarm.open({
    secret,
    storage,
    hello: localHello(),
    bootstrap: net.bootstrap,
    host: '127.0.0.1',
    proofTimeoutMs: 1500,
    pingIntervalMs: 100,
    ...opts
  })
  const log: Seen = { peers: [], rejects: [], messages: [] }
  swarm.on('peer', (p) => log.peers.push(p))
  swarm.on('reject', (e) => log.rejects.push(e))
  swarm.on('message', (m) => log.messages.push(m))
  seen.set(swarm, log)
  defer(t, async () => {
    await swarm.close()
    await rm(storage, { recursive: true, force: true })
  })
  return swarm
}

interface Seen {
  peers: PeerStatus[]
  rejects: RejectEvent[]
  messages: Envelope[]
}
const seen = new WeakMap<ClusterSwarm, Seen>()

/** What a swarm reported since it opened. */
function events(swarm: ClusterSwarm): Seen {
  return seen.get(swarm)!
}

async function firstPeer(swarm: ClusterSwarm): Promise<PeerStatus> {
  await until(() => events(swarm).peers.length > 0, 'a peer')
  return events(swarm).peers[0]!
}

async function until(check: () => boolean, what: string | (() => string), ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('the agent key pair persists in storage, owner-only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-key-'))
  try {
    const first = await loadOrCreateAgentKeyPair(join(dir, 'nested'))
    const again = await loadOrCreateAgentKeyPair(join(dir, 'nested'))
    assert.deepEqual(again, first)
    assert.equal((await stat(join(dir, 'nested', AGENT_KEY_FILE))).mode & 0o777, 0o600)
    await mkdir(join(dir, 'bad'))
    await writeFile(join(dir, 'bad', AGENT_KEY_FILE), 'x', { mode: 0o600 })
    await assert.rejects(loadOrCreateAgentKeyPair(join(dir, 'bad')), (e: unknown) => e instanceof ClusterError && e.code === 'bad_key_file')
    await chmod(join(dir, 'nested', AGENT_KEY_FILE), 0o644)
    await assert.rejects(loadOrCreateAgentKeyPair(join(dir, 'nested')), (e: unknown) => e instanceof ClusterError && e.code === 'insecure_key_file')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('envelope sequence numbers continue above everything sent before a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-seq-'))
  try {
    const first = SequenceAllocator.open(dir)
    assert.deepEqual([first.next(), first.next(), first.next()], [1, 2, 3])
    // A crash now: the next run starts above the reserved block, never reusing 4..SEQUENCE_BLOCK.
    const second = SequenceAllocator.open(dir)
    assert.equal(second.next(), SEQUENCE_BLOCK + 1)
    let last = 0
    for (let i = 0; i < SEQUENCE_BLOCK; i++) last = second.next()
    assert.equal(last, 2 * SEQUENCE_BLOCK + 1) // crossed into a second reserved block
    assert.equal(SequenceAllocator.open(dir).next(), 3 * SEQUENCE_BLOCK + 1)
    await writeFile(join(dir, SEQUENCE_FILE), 'twelve')
    assert.throws(() => SequenceAllocator.open(dir), (e: unknown) => e instanceof ClusterError && e.code === 'bad_sequence_file')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('two agents with the secret prove it, exchange hellos, signed messages and pings', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const a = await agent(t, net)
  const b = await agent(t, net, { hello: localHello('edge') })
  const sockets = new Map<ClusterSwarm, { handshakeHash: Uint8Array; peer: string }>()
  for (const s of [a, b]) s.on('connection', (socket, peer) => sockets.set(s, { handshakeHash: socket.handshakeHash, peer }))
  const messages = events(b).messages
  const [atA, atB] = await Promise.all([firstPeer(a), firstPeer(b)])

  // Both ends of one Noise session see the same handshake hash, the value the proofs are bound to.
  assert.deepEqual(sockets.get(a)!.handshakeHash, sockets.get(b)!.handshakeHash)
  assert.equal(sockets.get(a)!.peer, hex(b.publicKey))
  assert.equal(atA.key, hex(b.publicKey))
  assert.equal(atA.hello!.role, 'edge')
  assert.deepEqual(atB.hello!.agent, a.publicKey)
  assert.deepEqual(atB.hello!.muxKey, muxKey)
  assert.equal(atB.hello!.nodes[0]!.virtualScid, 0x8000_0000_0000_0abcn)

  const offer: Message = { type: 'records-request', term: 3, requestId: 1, after: 0 }
  assert.ok(a.send(hex(b.publicKey), offer))
  await until(() => messages.some((m) => m.message.type === 'records-request'), 'records-request')
  const received = messages.find((m) => m.message.type === 'records-request')!
  // What the audit log would store: the exact bytes, verifiable by anyone later.
  assert.ok(verifyEnvelope(decodeEnvelope(received.bytes)))
  assert.deepEqual(received.from, a.publicKey)
  assert.equal(messages[0]!.message.type, 'hello')

  await until(() => a.peers.get(hex(b.publicKey))?.rttMs != null, 'an RTT measurement')
  const health = a.peers.get(hex(b.publicKey))!
  assert.ok(health.rttMs! >= 0 && health.rttMs! < 1000)
  assert.ok(health.lastSeen >= health.connectedAt)
  assert.equal(a.broadcast({ type: 'vote', term: 1, voter: a.publicKey, granted: true, view: { term: 3, records: 41 }, pre: false }), 1)

  // What is sent to a peer in one turn travels as one signed envelope, delivered in order.
  const burst = Array.from({ length: 5 }, (_, i): Message => ({ type: 'records-request', term: 4, requestId: 10 + i, after: 0 }))
  for (const m of burst) assert.ok(a.send(hex(b.publicKey), m))
  await until(() => messages.some((m) => m.message.type === 'records-request' && m.message.requestId === 14), 'the burst')
  const delivered = messages.filter((m) => m.message.type === 'records-request' && m.message.term === 4)
  assert.deepEqual(delivered.map((m) => (m.message as { requestId: number }).requestId), [10, 11, 12, 13, 14])
  assert.ok(delivered.every((m) => m.bytes === delivered[0]!.bytes && m.seq === delivered[0]!.seq))
  assert.equal(decodeEnvelope(delivered[0]!.bytes).message.type, 'batch')
  assert.ok(verifyEnvelope(decodeEnvelope(delivered[0]!.bytes)))
  assert.throws(() => a.send(hex(b.publicKey), { type: 'ping', nonce: -1 }), RangeError)

  // A changed hello replaces the old one; 'peer' fires only for the first.
  b.updateHello({ ...localHello('edge'), nodes: [] })
  await until(() => a.peers.get(hex(b.publicKey))?.hello?.nodes.length === 0, 'the updated hello')
  assert.equal(events(a).peers.length, 1)

  const gone = once(a, 'disconnect')
  await b.close()
  assert.deepEqual(await gone, [hex(b.publicKey)])
  assert.deepEqual(a.peers.list(), [])
  assert.equal(a.send(hex(b.publicKey), { type: 'ping', nonce: 1 }), false)
})

test('the connection hook lets the audit log replicate cores over the same connection', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const dirs = await Promise.all([0, 1].map(() => mkdtemp(join(tmpdir(), 'highwire-store-'))))
  const stores = dirs.map((dir) => new Corestore(dir))
  defer(t, async () => {
    for (const store of stores) await store.close()
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })
  const [storeA, storeB] = stores as [Corestore, Corestore]
  const core = storeA.get({ name: 'audit' })
  await core.ready()
  await core.append(new TextEncoder().encode('settle record'))
  const a = await agent(t, net)
  const b = await agent(t, net)
  a.on('connection', (socket) => storeA.replicate(socket))
  b.on('connection', (socket) => storeB.replicate(socket))
  await Promise.all([firstPeer(a), firstPeer(b)])
  const copy = storeB.get({ key: core.key })
  await copy.ready()
  const block = await copy.get(0, { timeout: 5000 })
  assert.equal(new TextDecoder().decode(block!), 'settle record')
  // Replication shares the muxer; the cluster channel keeps working beside it.
  assert.ok(b.send(hex(a.publicKey), { type: 'records-request', term: 1, requestId: 2, after: 0 }))
  await until(() => events(a).messages.some((m) => m.message.type === 'records-request'), 'a message beside replication')
})

test('a stranger with the wrong secret never gets a hello and is disconnected', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const a = await agent(t, net)
  const stranger = await agent(t, net, { secret: rand(32) })
  const aRejects = events(a).rejects
  const strangerRejects = events(stranger).rejects
  stranger.joinPeer(a.publicKey)
  await until(() => aRejects.length > 0, 'a to reject the stranger')
  assert.deepEqual(aRejects.map((r) => [r.peer, r.code]), [[hex(stranger.publicKey), 'bad_proof']])
  // The stranger may not even see our proof before we hang up; if it did, it refused it too.
  for (const r of strangerRejects) assert.equal(r.code, 'bad_proof')
  assert.ok(a.isBanned(hex(stranger.publicKey)))
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(events(a).messages.length + events(stranger).messages.length, 0)
  assert.equal(a.peers.list().length, 0)
  assert.equal(aRejects.length, 1, 'logged once')
})

test('a peer outside cluster.members is refused; a member is let in', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const b = await agent(t, net)
  const a = await agent(t, net, { members: [b.publicKey] })
  const outsider = await agent(t, net)
  const aRejects = events(a).rejects
  const outsiderPeers = events(outsider).peers
  await firstPeer(a)
  outsider.joinPeer(a.publicKey)
  await until(() => aRejects.length > 0, 'the outsider to be refused')
  assert.deepEqual(aRejects.map((r) => [r.peer, r.code]), [[hex(outsider.publicKey), 'not_member']])
  await until(() => outsiderPeers.length > 0, 'the outsider to meet b')
  assert.deepEqual(outsiderPeers.map((p) => p.key), [hex(b.publicKey)])
  assert.deepEqual(a.peers.ready().map((p) => p.key), [hex(b.publicKey)])
})

test('a member whose hello expects another virtual node key is rejected', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const a = await agent(t, net)
  const b = await agent(t, net, { hello: { ...localHello(), muxKey: rand(33) } })
  const aRejects = events(a).rejects
  const bRejects = events(b).rejects
  await until(() => aRejects.length + bRejects.length > 0, 'a rejection')
  // Whichever side reads the other's hello first hangs up; neither accepts the other.
  for (const r of [...aRejects, ...bRejects]) assert.equal(r.code, 'mux_key_mismatch')
  assert.equal(events(a).peers.length + events(b).peers.length, 0)
})

test('bad envelopes from a member holding the secret are each rejected once, with their reason, and banned', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  let now = Date.now()
  const a = await agent(t, net, { now: () => now, banMs: 60_000 })
  const aRejects = events(a).rejects
  const dht = new DHT({ bootstrap: net.bootstrap, host: '127.0.0.1' })
  defer(t, () => dht.destroy())
  const authKey = deriveAuthKey(secret)

  /** A hand-made client: valid proof, then whatever frames `script` gives, in order. */
  async function attack(script: (kp: AgentKeyPair, hello: Uint8Array) => Uint8Array[]): Promise<AgentKeyPair> {
    const kp = DHT.keyPair()
    const socket = dht.connect(a.publicKey, { keyPair: kp })
    socket.on('error', () => {})
    await once(socket, 'open')
    const channel = Protomux.from(socket).createChannel<Uint8Array>({ protocol: CHANNEL_PROTOCOL, handshake: c.raw })!
    const frames = channel.addMessage({ encoding: c.raw, onmessage() {} })
    channel.open(secretProof(authKey, socket.handshakeHash, kp.publicKey))
    const hello: Hello = { type: 'hello', agent: kp.publicKey, protocolVersion: PROTOCOL_VERSION, ...localHello('edge') }
    for (const frame of script(kp, encodeEnvelope(kp, 1, now, hello))) frames.send(frame)
    return kp
  }
  const ping = (kp: AgentKeyPair, seq: number) => encodeEnvelope(kp, seq, now, { type: 'ping', nonce: seq })
  const cases: Array<[string, (kp: AgentKeyPair, hello: Uint8Array) => Uint8Array[]]> = [
    ['replay', (kp, hello) => [hello, ping(kp, 2), ping(kp, 2)]],
    ['replay', (kp, hello) => [hello, ping(kp, 5), ping(kp, 3)]], // reordered
    [
      'bad_signature',
      (kp, hello) => {
        const forged = ping(kp, 2)
        forged[forged.length - 1]! ^= 1
        return [hello, forged]
      }
    ],
    ['unknown_type', (kp, hello) => [hello, sealEnvelope(kp, 2, now, 4000, new Uint8Array(8))]],
    ['oversize', (kp, hello) => [hello, new Uint8Array(MAX_ENVELOPE_BYTES + 1)]],
    ['malformed_body', (kp, hello) => [hello, sealEnvelope(kp, 2, now, 2, Uint8Array.of(0xfe))]],
    ['hello_expected', (kp) => [ping(kp, 1)]],
    [
      'wrong_sender',
      (kp) => [encodeEnvelope(kp, 1, now, { type: 'hello', agent: rand(32), protocolVersion: PROTOCOL_VERSION, ...localHello() })]
    ],
    [
      'protocol_version',
      (kp) => [encodeEnvelope(kp, 1, now, { type: 'hello', agent: kp.publicKey, protocolVersion: PROTOCOL_VERSION + 1, ...localHello() })]
    ],
    ['wrong_sender', (_kp, hello) => [hello, ping(DHT.keyPair(), 2)]],
    ['clock_skew', (kp) => [encodeEnvelope(kp, 1, now + 3_600_000, { type: 'ping', nonce: 1 })]]
  ]
  const attackers = await Promise.all(cases.map(([, script]) => attack(script)))
  await until(() => aRejects.length >= cases.length, () => `every attack to be rejected, got ${JSON.stringify(aRejects)}`)
  await new Promise((r) => setTimeout(r, 200))
  for (const [i, [code]] of cases.entries()) {
    const key = hex(attackers[i]!.publicKey)
    const forKey = aRejects.filter((r) => r.peer === key)
    assert.deepEqual(forKey.map((r) => r.code), [code], `case ${i}: ${code}`)
    assert.ok(a.isBanned(key))
    assert.ok(forKey[0]!.message.length > 0)
  }
  assert.equal(aRejects.length, cases.length)
  assert.equal(a.peers.ready().length, 0)

  // A banned key is refused before the handshake completes, without another report (the DHT server
  // drops a firewalled handshake silently, so "refused" here means no connection within a second,
  // where an admitted one takes tens of milliseconds)...
  const redial = async (keyPair: AgentKeyPair): Promise<boolean> => {
    const socket = dht.connect(a.publicKey, { keyPair })
    socket.on('error', () => {})
    const opened = await Promise.race([
      once(socket, 'open').then(() => true, () => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000))
    ])
    socket.destroy()
    return opened
  }
  assert.equal(await redial(attackers[0]!), false)
  assert.equal(aRejects.length, cases.length)
  // ...until banMs has passed on the injected clock and the next tick lifts it.
  now += 60_001
  assert.ok(!a.isBanned(hex(attackers[0]!.publicKey)))
  await new Promise((r) => setTimeout(r, 150))
  assert.equal(await redial(attackers[0]!), true)
})

test('a connection that never proves the secret is dropped after the proof timeout', { timeout: 15_000 }, async (t) => {
  const net = await testnet(t)
  const a = await agent(t, net, { proofTimeoutMs: 300 })
  const aRejects = events(a).rejects
  const dht = new DHT({ bootstrap: net.bootstrap, host: '127.0.0.1' })
  defer(t, () => dht.destroy())
  const socket = dht.connect(a.publicKey)
  socket.on('error', () => {})
  await once(socket, 'open')
  await new Promise((resolve) => socket.on('close', resolve))
  assert.deepEqual(aRejects.map((r) => r.code), ['proof_timeout'])
  assert.ok(!a.isBanned(hex(socket.publicKey)), 'a slow link is not banned')
})
