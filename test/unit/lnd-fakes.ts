// Test doubles shared by the test/unit/lnd-*.test.ts files.
import type { Clock } from '../../src/lnd/stream.ts'

// A manual clock: timers fire only when the test advances time.
export class ManualClock implements Clock {
  time = 0
  private timers: Array<{ at: number, fn: () => void, id: number }> = []
  private next = 0
  now = (): number => this.time
  setTimeout = (fn: () => void, ms: number): unknown => { const id = this.next++; this.timers.push({ at: this.time + ms, fn, id }); return id }
  clearTimeout = (handle: unknown): void => { this.timers = this.timers.filter(t => t.id !== handle) }
  advance (ms: number): void {
    this.time += ms
    for (;;) {
      const due = this.timers.filter(t => t.at <= this.time).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) return
      this.timers = this.timers.filter(t => t !== due)
      due.fn()
    }
  }

  get pending (): number { return this.timers.length }
}

