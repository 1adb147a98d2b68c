// `npm run bench`: runs every bench/*.bench.ts in turn and prints one JSON object per line,
// {"name", "value", "unit"}, with any reference figure measured in the same run printed beside it.
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'

export type Emit = (name: string, value: number, unit: string, extra?: Record<string, unknown>) => void

const emit: Emit = (name, value, unit, extra) => {
  const rounded = Number.isInteger(value) ? value : Number(value.toPrecision(4))
  process.stdout.write(JSON.stringify({ name, value: rounded, unit, ...extra }) + '\n')
}

const dir = fileURLToPath(new URL('.', import.meta.url))
const only = process.argv.slice(2)
for (const file of readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort()) {
  if (only.length > 0 && !only.some((o) => file.includes(o))) continue
  const mod = (await import(pathToFileURL(join(dir, file)).href)) as { default: (emit: Emit) => Promise<void> }
  await mod.default(emit)
}
