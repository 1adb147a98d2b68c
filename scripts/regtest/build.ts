// Builds the pinned lnd, lncli, btcd and btcctl from the Go module proxy.
//
// `go install lnd@version` is refused because lnd's go.mod carries `replace`
// directives, so we fetch the module (`go mod download -json`), copy it to a
// writable directory and `go build` inside it. btcd is built from the same
// directory with `-mod=mod`, which resolves it at the version lnd's go.mod
// requires: the btcd we test against is the one this lnd was released with.
import { spawn, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync, readFileSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { CACHE_DIR, binaries, readVersions, toolDir, type Pin, type Versions } from './paths.ts'

const run = promisify(execFile)

export class BuildError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

interface Stamp {
  version: string
  tags: string[]
  go: string
  seconds: number
}

const STAMP = 'build.json'

function stampMatches (dir: string, pin: Pin, files: string[]): boolean {
  const stampFile = path.join(dir, STAMP)
  if (!existsSync(stampFile) || !files.every((f) => existsSync(path.join(dir, f)))) return false
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8')) as Stamp
  return stamp.version === pin.version && stamp.tags.join(',') === (pin.tags ?? []).join(',')
}

const LND_FILES = ['lnd', 'lncli']
const BTCD_FILES = ['btcd', 'btcctl']

export function isBuilt (versions: Versions = readVersions()): boolean {
  return stampMatches(toolDir('lnd', versions.lnd), versions.lnd, LND_FILES) &&
    stampMatches(toolDir('btcd', versions.btcd), versions.btcd, BTCD_FILES)
}

export function formatSeconds (seconds: number): string {
  const m = Math.floor(seconds / 60)
  const s = Math.round(seconds - m * 60)
  return m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`
}

// `go build -v` names each package as it compiles it; we count them and print a
// heartbeat instead of hundreds of lines, so a 10-minute cold build shows life.
function goBuild (label: string, args: string[], cwd: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn('go', ['build', '-v', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let packages = 0
    let tail: string[] = []
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() === '') continue
        if (!line.startsWith('go: ')) packages++
        tail = [...tail.slice(-19), line]
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    const timer = setInterval(() => {
      log(`  ${label}: ${packages} packages compiled, ${formatSeconds((Date.now() - started) / 1000)}`)
    }, 15_000)
    child.on('error', (err) => { clearInterval(timer); reject(err) })
    child.on('close', (code) => {
      clearInterval(timer)
      if (code === 0) {
        log(`  ${label}: done (${packages} packages) in ${formatSeconds((Date.now() - started) / 1000)}`)
        resolve()
      } else {
        reject(new BuildError('go_build_failed', `${label}: go build exited ${code}:\n${tail.join('\n')}`))
      }
    })
  })
}

// The btcd that `-mod=mod` builds is whatever lnd's go.mod requires; refuse to
// build if that disagrees with versions.json, so the pin file never lies.
function requiredVersion (goMod: string, module: string): string | undefined {
  const line = goMod.split('\n').find((l) => l.trim().startsWith(module + ' '))
  return line?.trim().split(/\s+/)[1]
}

async function writeStamp (dir: string, pin: Pin, go: string, seconds: number): Promise<void> {
  const stamp: Stamp = { version: pin.version, tags: pin.tags ?? [], go, seconds }
  await fs.writeFile(path.join(dir, STAMP), JSON.stringify(stamp, null, 2) + '\n')
}

// Moves freshly built binaries into place only when all of them exist, so an
// interrupted build never leaves a directory that looks complete.
async function install (outDir: string, dir: string, files: string[], pin: Pin, go: string, seconds: number): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true })
  await fs.mkdir(dir, { recursive: true })
  for (const f of files) await fs.rename(path.join(outDir, f), path.join(dir, f))
  await writeStamp(dir, pin, go, seconds)
}

export async function build (log: (line: string) => void = console.log): Promise<void> {
  const versions = readVersions()
  if (isBuilt(versions)) {
    log(`binaries cached: lnd ${versions.lnd.version}, btcd ${versions.btcd.version} in ${CACHE_DIR}`)
    return
  }
  const started = Date.now()
  const go = (await run('go', ['env', 'GOVERSION'])).stdout.trim()
  log(`building lnd ${versions.lnd.version} and btcd ${versions.btcd.version} with ${go} (takes minutes on a cold Go cache)`)

  const { lnd, btcd } = versions
  const info = JSON.parse((await run('go', ['mod', 'download', '-json', `${lnd.module}@${lnd.version}`])).stdout) as { Dir?: string, Error?: string }
  if (info.Dir === undefined) throw new BuildError('download_failed', `go mod download ${lnd.module}@${lnd.version}: ${info.Error ?? 'no Dir'}`)

  const required = requiredVersion(await fs.readFile(path.join(info.Dir, 'go.mod'), 'utf8'), btcd.module)
  if (required !== btcd.version) {
    throw new BuildError('pin_mismatch', `lnd ${lnd.version} requires ${btcd.module} ${required ?? '(none)'}, versions.json pins ${btcd.version}`)
  }

  // The module cache is read-only; build in a writable copy that stays put
  // between builds so Go's build cache keeps hitting the same paths.
  const src = path.join(CACHE_DIR, 'src', `lnd-${lnd.version}`)
  if (!existsSync(path.join(src, 'go.mod'))) {
    await fs.mkdir(path.dirname(src), { recursive: true })
    await fs.cp(info.Dir, src, { recursive: true })
    await run('chmod', ['-R', 'u+w', src])
  }
  const out = path.join(CACHE_DIR, 'src', `out-${process.pid}`)
  await fs.rm(out, { recursive: true, force: true })
  await fs.mkdir(out, { recursive: true })
  try {
    if (!stampMatches(toolDir('lnd', lnd), lnd, LND_FILES)) {
      const t = Date.now()
      await goBuild('lnd, lncli', [`-tags=${(lnd.tags ?? []).join(' ')}`, '-o', out + '/', './cmd/lnd', './cmd/lncli'], src, log)
      await install(out, toolDir('lnd', lnd), LND_FILES, lnd, go, (Date.now() - t) / 1000)
    }
    if (!stampMatches(toolDir('btcd', btcd), btcd, BTCD_FILES)) {
      const t = Date.now()
      await goBuild('btcd, btcctl', ['-mod=mod', '-o', out + '/', btcd.module, `${btcd.module}/cmd/btcctl`], src, log)
      await install(out, toolDir('btcd', btcd), BTCD_FILES, btcd, go, (Date.now() - t) / 1000)
    }
  } finally {
    await fs.rm(out, { recursive: true, force: true })
  }
  const bins = binaries(versions)
  log(`built in ${formatSeconds((Date.now() - started) / 1000)}: ${Object.values(bins).join(', ')}`)
}
