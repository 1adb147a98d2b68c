import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { backoffDelay, ReconnectingStream, type StreamEvent } from '../../src/lnd/stream.ts'
import { ManualClock } from './lnd-fakes.ts'

const OPTS = { initialMs: 100, maxMs: 1000, stableMs: 5000 }

test('backoff doubles up to the cap, with half of each delay jittered', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(a => backoffDelay(a, OPTS, () => 0)), [50, 100, 200, 400, 500, 500])
  assert.deepEqual([0, 1, 2, 3, 4, 10].map(a => backoffDelay(a, OPTS, () => 1)), [100, 200, 400, 800, 1000, 1000])
  assert.equal(backoffDelay(2, OPTS, () => 0.5), 300)
  assert.equal(backoffDelay(5000, OPTS, () => 1), 1000)
  assert.throws(() => backoffDelay(-1, OPTS, () => 0), RangeError)
  assert.throws(() => backoffDelay(1.5, OPTS, () => 0), RangeError)
})

class FakeCall extends EventEmitter {
  cancelled = false
  cancel (): void {
    this.cancelled = true
    this.emit('error', Object.assign(new Error('1 CANCELLED: Cancelled on client'), { code: 1 }))
  }
}

function harness () {
  const clock = new ManualClock()
  const calls: FakeCall[] = []
  const events: StreamEvent[] = []
  const messages: string[] = []
  const stream = new ReconnectingStream<string, FakeCall>({
    node: 'alice',
    stream: 'Test',
    open: () => { const c = new FakeCall(); calls.push(c); return c },
    onMessage: (m) => { if (m === 'boom') throw new Error('handler bug'); messages.push(m) },
    onEvent: (e) => events.push(e),
    backoff: OPTS,
    clock,
    random: () => 0
  })
  return { clock, calls, events, messages, stream }
}

test('a dropped stream is reopened after a growing delay, reset by a message', () => {
  const { clock, calls, events, messages, stream } = harness()
  stream.start()
  assert.equal(calls.length, 1)
  calls[0]!.emit('error', Object.assign(new Error('14 UNAVAILABLE: down'), { code: 14 }))
  assert.deepEqual(events.slice(1), [
    { type: 'stream_closed', node: 'alice', stream: 'Test', error: '14 UNAVAILABLE: down', grpcCode: 14 },
    { type: 'stream_retry', node: 'alice', stream: 'Test', attempt: 0, delayMs: 50 }
  ])
  clock.advance(49)
  assert.equal(calls.length, 1)
  clock.advance(1)
  assert.equal(calls.length, 2)
  calls[1]!.emit('end')
  clock.advance(100)
  assert.equal(calls.length, 3)
  assert.deepEqual(events.filter(e => e.type === 'stream_retry').map(e => e.type === 'stream_retry' && e.delayMs), [50, 100])
  calls[2]!.emit('data', 'hello')
  assert.deepEqual(messages, ['hello'])
  calls[2]!.emit('end')
  assert.deepEqual(events.at(-1), { type: 'stream_retry', node: 'alice', stream: 'Test', attempt: 0, delayMs: 50 })
  stream.stop()
})

test('a stream that lived past stableMs retries from the shortest delay', () => {
  const { clock, calls, events, stream } = harness()
  stream.start()
  calls[0]!.emit('end')
  clock.advance(50)
  calls[1]!.emit('end')
  clock.advance(100)
  clock.advance(OPTS.stableMs)
  calls[2]!.emit('end')
  assert.deepEqual(events.at(-1), { type: 'stream_retry', node: 'alice', stream: 'Test', attempt: 0, delayMs: 50 })
  stream.stop()
})

test('a throwing handler drops the stream instead of crashing, and it reconnects', () => {
  const { clock, calls, events, stream } = harness()
  stream.start()
  calls[0]!.emit('data', 'boom')
  assert.equal(calls[0]!.cancelled, true)
  assert.ok(events.some(e => e.type === 'stream_closed' && e.error === 'handler bug'))
  clock.advance(50)
  assert.equal(calls.length, 2)
  stream.stop()
})

test('stop cancels the call and no retry is scheduled', () => {
  const { clock, calls, events, stream } = harness()
  stream.start()
  stream.stop()
  assert.equal(calls[0]!.cancelled, true)
  assert.equal(clock.pending, 0)
  assert.equal(events.filter(e => e.type === 'stream_retry').length, 0)
  clock.advance(10_000)
  assert.equal(calls.length, 1)
})
