// The agent's persistent ed25519 key pair: its identity in the swarm (the Noise static key) and the
// key that signs its envelopes. Stored as the 32-byte seed, owner-only (0600), in the storage dir.
import { mkdir, open, readFile, rename, stat } from 'node:fs/promises'
import { join } from 'node:path'
import sodium from 'sodium-universal'
import { ClusterError } from './errors.ts'
import type { AgentKeyPair } from './envelope.ts'

export const AGENT_KEY_FILE = 'agent-key'
const SEED_BYTES = 32

function keyPairFromSeed(seed: Uint8Array): AgentKeyPair {
  const publicKey = new Uint8Array(32)
  const secretKey = new Uint8Array(64)
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { publicKey, secretKey }
}

/** Loads `<dir>/agent-key`, creating it (and `dir`, 0700) on first start. */
export async function loadOrCreateAgentKeyPair(dir: string): Promise<AgentKeyPair> {
  const path = join(dir, AGENT_KEY_FILE)
  try {
    return await loadAgentKeyPair(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const seed = new Uint8Array(SEED_BYTES)
  sodium.randombytes_buf(seed)
  // Write then rename, so a crash never leaves a truncated key behind.
  const tmp = `${path}.${process.pid}.tmp`
  const file = await open(tmp, 'wx', 0o600)
  try {
    await file.writeFile(seed)
    await file.sync()
  } finally {
    await file.close()
  }
  await rename(tmp, path)
  return keyPairFromSeed(seed)
}

async function loadAgentKeyPair(path: string): Promise<AgentKeyPair> {
  const { mode } = await stat(path)
  if ((mode & 0o077) !== 0) {
    throw new ClusterError('insecure_key_file', `${path} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`)
  }
  const seed = await readFile(path)
  if (seed.byteLength !== SEED_BYTES) {
    throw new ClusterError('bad_key_file', `${path} holds ${seed.byteLength} bytes, expected a ${SEED_BYTES}-byte seed`)
  }
  return keyPairFromSeed(seed)
}
