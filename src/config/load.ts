// Loads config/default.json with config/local.json over it (the `config` package, NODE_CONFIG_DIR
// honoured), applies HIGHWIRE_SECRET / HIGHWIRE_IDENTITY_KEY through
// config/custom-environment-variables.json, and validates the result.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ConfigError } from './reader.ts'
import { validateConfig, type HighwireConfig } from './schema.ts'

/** The repository's own config folder, used when NODE_CONFIG_DIR is not set. */
export const DEFAULT_CONFIG_DIR = fileURLToPath(new URL('../../config', import.meta.url))

export function configDir(): string {
  return process.env.NODE_CONFIG_DIR ?? DEFAULT_CONFIG_DIR
}

/** The merged raw tree, before validation. */
export async function loadRawConfig(): Promise<unknown> {
  const dir = configDir()
  if (!existsSync(`${dir}/default.json`)) {
    throw new ConfigError([{ path: 'NODE_CONFIG_DIR', problem: `${dir} has no default.json`, example: 'the repository\'s config/ folder' }])
  }
  process.env.NODE_CONFIG_DIR = dir
  // The `config` package reads its directory once, when first imported.
  const { default: config } = await import('config')
  return config.util.toObject()
}

export async function loadConfig(): Promise<HighwireConfig> {
  return validateConfig(await loadRawConfig())
}
