// A throw-away self-signed TLS certificate for a simulated node, made with the openssl CLI (as
// lnd makes its own tls.cert: EC P-256, SANs for localhost and 127.0.0.1).
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TlsIdentity {
  /** PEM certificate: what a client pins. */
  cert: Buffer
  /** PEM private key. */
  key: Buffer
}

export async function selfSignedCert (commonName: string): Promise<TlsIdentity> {
  const dir = await mkdtemp(join(tmpdir(), 'highwire-sim-tls-'))
  try {
    const keyPath = join(dir, 'tls.key')
    const certPath = join(dir, 'tls.cert')
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', `/CN=${commonName}`,
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'
    ])
    return { cert: await readFile(certPath), key: await readFile(keyPath) }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
