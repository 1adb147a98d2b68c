// The defaults of config/default.json as a validated config, with sections patched over them: for
// agents built in code (the demo, tests, benchmarks), so that none restates the defaults.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_CONFIG_DIR } from './load.ts'
import { validateConfig, type HighwireConfig } from './schema.ts'
import { newClusterSecret } from './secrets.ts'

/** Per section, the keys to replace; a section not named keeps every default. */
export type ConfigPatch = { [K in keyof HighwireConfig]?: Partial<HighwireConfig[K]> }

export function configWithDefaults(patch: ConfigPatch): HighwireConfig {
  const raw = JSON.parse(readFileSync(join(DEFAULT_CONFIG_DIR, 'default.json'), 'utf8')) as { cluster: { secret: string } }
  // The placeholder secret is refused by design; any valid one will do until the patch sets its own.
  raw.cluster.secret = newClusterSecret()
  const config: HighwireConfig = validateConfig(raw)
  const sections = config as unknown as Record<string, object>
  for (const [section, values] of Object.entries(patch) as [string, object][]) sections[section] = { ...sections[section], ...values }
  return config
}
