// Measurements shared by the benchmarks.

/** The `q` quantile of ascending `sorted` (0.5: the median, 0.99: p99). */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** Runs `fn` in batches until `seconds` have passed; calls per second. */
export function ratePerSecond(fn: () => void, seconds = 1, batch = 64): number {
  for (let i = 0; i < batch; i++) fn() // warm-up
  const start = process.hrtime.bigint()
  const limit = BigInt(Math.round(seconds * 1e9))
  let count = 0
  let elapsed = 0n
  do {
    for (let i = 0; i < batch; i++) fn()
    count += batch
    elapsed = process.hrtime.bigint() - start
  } while (elapsed < limit)
  return count / (Number(elapsed) / 1e9)
}
