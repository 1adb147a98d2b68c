// Rate measurement shared by the benchmarks: run `fn` in batches until `seconds` have passed.
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
