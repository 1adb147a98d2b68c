// A HighwireConfig passed to an agent process on its command line: JSON with bytes as {"hex": "..."}.
import type { HighwireConfig } from '../src/config/schema.ts'

export function configToJson(config: HighwireConfig): string {
  return JSON.stringify(config, (_key, v: unknown) => (v instanceof Uint8Array || (v as { type?: string })?.type === 'Buffer' ? { hex: Buffer.from(v instanceof Uint8Array ? v : (v as { data: number[] }).data).toString('hex') } : v))
}

export function configFromJson(json: string): HighwireConfig {
  return JSON.parse(json, (_key, v: unknown) => (v !== null && typeof v === 'object' && 'hex' in v ? Buffer.from((v as { hex: string }).hex, 'hex') : v)) as HighwireConfig
}
