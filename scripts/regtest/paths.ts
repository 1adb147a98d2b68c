// Where the regtest network keeps its binaries, data and state.
// Binaries live outside the repository (one directory per pinned version, so a
// new pin builds next to the old one); node data lives in the git-ignored
// .regtest/ so `down` + `up` never touches anything else.
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'

export const SCRIPT_DIR = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(SCRIPT_DIR, '..', '..')

export const REGTEST_DIR = process.env.HIGHWIRE_REGTEST_DIR ?? path.join(REPO_ROOT, '.regtest')
export const ENV_FILE = path.join(REGTEST_DIR, 'env.json')
export const STATE_FILE = path.join(REGTEST_DIR, 'state.json')

export const CACHE_DIR = process.env.HIGHWIRE_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'highwire')

export interface Pin {
  module: string
  version: string
  tags?: string[]
}

export interface Versions {
  lnd: Pin
  btcd: Pin
}

export function readVersions (): Versions {
  return JSON.parse(readFileSync(path.join(SCRIPT_DIR, 'versions.json'), 'utf8')) as Versions
}

// One directory per tool and pinned version: changing the pin changes the path,
// which is what makes `build` rebuild exactly when the pin changes.
export function toolDir (tool: 'lnd' | 'btcd', pin: Pin): string {
  return path.join(CACHE_DIR, `${tool}-${pin.version}`)
}

export interface Binaries {
  lnd: string
  lncli: string
  btcd: string
  btcctl: string
}

export function binaries (versions: Versions = readVersions()): Binaries {
  const lnd = toolDir('lnd', versions.lnd)
  const btcd = toolDir('btcd', versions.btcd)
  return {
    lnd: path.join(lnd, 'lnd'),
    lncli: path.join(lnd, 'lncli'),
    btcd: path.join(btcd, 'btcd'),
    btcctl: path.join(btcd, 'btcctl')
  }
}
