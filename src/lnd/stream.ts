// Long-lived gRPC streams to lnd (HtlcInterceptor, SubscribeHtlcEvents, TrackPaymentV2) are
// reopened after every failure, with capped exponential backoff and jitter so that several
// agents restarting together do not hammer a node in lockstep. Clock and randomness are
// parameters so tests drive reconnects without waiting.

export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>)
}

export interface BackoffOptions {
  initialMs: number // delay before the first retry, before jitter
  maxMs: number // cap of the exponential growth
  stableMs: number // a stream that lived this long resets the attempt counter
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, stableMs: 10_000 }

// "Equal jitter": half the exponential delay is fixed, half uniformly random, so a retry never
// comes immediately yet retries of many clients spread out.
// https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
export function backoffDelay (attempt: number, opts: BackoffOptions, random: () => number): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`backoff attempt must be a non-negative integer, got ${attempt}`)
  const ceiling = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 52))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}

// Connection events go to the agent's log and audit core. They never carry credentials.
export type StreamEvent =
  | { type: 'stream_open', node: string, stream: string, attempt: number }
  | { type: 'stream_closed', node: string, stream: string, error: string | null, grpcCode: number | null }
  | { type: 'stream_retry', node: string, stream: string, attempt: number, delayMs: number }

// The subset of a grpc-js client stream (readable or duplex) used here.
export interface StreamCall<T> {
  on: ((event: 'data', listener: (message: T) => void) => unknown) &
  ((event: 'error', listener: (err: Error & { code?: number }) => void) => unknown) &
  ((event: 'end', listener: () => void) => unknown)
  cancel: () => void
}

export interface ReconnectingStreamOptions<T, C extends StreamCall<T>> {
  node: string
  stream: string
  open: () => C
  onOpen?: (call: C) => void
  onMessage: (message: T, call: C) => void
  onClose?: (call: C) => void
  onEvent: (event: StreamEvent) => void
  backoff?: BackoffOptions
  clock?: Clock
  random?: () => number
}

export class ReconnectingStream<T, C extends StreamCall<T> = StreamCall<T>> {
  private readonly opts: ReconnectingStreamOptions<T, C>
  private readonly backoff: BackoffOptions
  private readonly clock: Clock
  private readonly random: () => number
  private call: C | null = null
  private closeCurrent: ((err: Error | null) => void) | null = null
  private timer: unknown = null
  private attempt = 0
  private running = false

  constructor (opts: ReconnectingStreamOptions<T, C>) {
    this.opts = opts
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF
    this.clock = opts.clock ?? systemClock
    this.random = opts.random ?? Math.random
  }

  get current (): C | null {
    return this.call
  }

  start (): void {
    if (this.running) return
    this.running = true
    this.connect()
  }

  // Closes synchronously: when stop() returns, onClose has run and no stream is current, even
  // though grpc-js reports the cancellation itself later.
  stop (): void {
    this.running = false
    if (this.timer !== null) this.clock.clearTimeout(this.timer)
    this.timer = null
    const call = this.call
    this.closeCurrent?.(null)
    call?.cancel()
  }

  private connect (): void {
    this.timer = null
    if (!this.running) return
    const { node, stream } = this.opts
    const openedAt = this.clock.now()
    let closed = false
    const call = this.opts.open()
    const close = (err: (Error & { code?: number }) | null): void => {
      if (closed) return
      closed = true
      if (this.call === call) {
        this.call = null
        this.closeCurrent = null
      }
      this.opts.onEvent({ type: 'stream_closed', node, stream, error: err === null ? null : err.message, grpcCode: err?.code ?? null })
      this.opts.onClose?.(call)
      if (!this.running) return
      if (this.clock.now() - openedAt >= this.backoff.stableMs) this.attempt = 0
      const delayMs = backoffDelay(this.attempt, this.backoff, this.random)
      this.opts.onEvent({ type: 'stream_retry', node, stream, attempt: this.attempt, delayMs })
      this.attempt++
      this.timer = this.clock.setTimeout(() => this.connect(), delayMs)
    }
    this.call = call
    this.closeCurrent = close
    this.opts.onEvent({ type: 'stream_open', node, stream, attempt: this.attempt })

    call.on('data', (message: T) => {
      if (closed) return
      // A message proves the stream works: the next failure starts from the short delay.
      this.attempt = 0
      try {
        this.opts.onMessage(message, call)
      } catch (err) {
        // A handler bug must not take the process down from inside grpc-js: drop this stream
        // (lnd replays what it still holds) and report why.
        close(err instanceof Error ? err : new Error(String(err)))
        call.cancel()
      }
    })
    call.on('error', (err) => close(err))
    call.on('end', () => close(null))
    this.opts.onOpen?.(call)
  }
}
