#!/usr/bin/env node
// `node src` entry: TypeScript is loaded at run time by tsx, so there is no build step.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
