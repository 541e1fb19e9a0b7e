import { RingBuffer } from './ringBuffer'

export interface CoalescerOptions<T> {
  /** Minimum time between two applications (100 ms = at most 10 renders per second). */
  intervalMs: number
  /** At most this many items wait between applications (and while paused); older ones are dropped. */
  maxPending: number
  /** Receives the buffered items (oldest first) and how many were dropped since the last call. */
  apply: (items: T[], dropped: number) => void
  now?: () => number
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
}

/**
 * Buffers items that arrive at any rate and hands them on in batches, at most once per interval.
 * While paused it keeps buffering, bounded to maxPending (the newest win).
 */
export class FrameCoalescer<T> {
  private pending: RingBuffer<T>
  private dropped = 0
  private timer: unknown = null
  private lastApply = -Infinity
  private isPaused = false
  private readonly now: () => number
  private readonly setTimer: (fn: () => void, ms: number) => unknown
  private readonly clearTimer: (handle: unknown) => void

  constructor(private readonly opts: CoalescerOptions<T>) {
    this.pending = new RingBuffer<T>(opts.maxPending)
    this.now = opts.now ?? (() => Date.now())
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms))
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>))
  }

  get pendingCount(): number {
    return this.pending.length
  }

  get droppedCount(): number {
    return this.dropped
  }

  get paused(): boolean {
    return this.isPaused
  }

  push(items: readonly T[]): void {
    if (items.length === 0) return
    this.dropped += this.pending.pushMany(items)
    if (!this.isPaused) this.schedule()
  }

  pause(): void {
    this.isPaused = true
    this.cancel()
  }

  resume(): void {
    this.isPaused = false
    if (this.pending.length > 0 || this.dropped > 0) this.flush()
  }

  /** Applies whatever is pending now (used on resume and in tests). */
  flush(): void {
    this.cancel()
    const items = this.pending.toArray()
    const dropped = this.dropped
    this.pending.clear()
    this.dropped = 0
    this.lastApply = this.now()
    if (items.length > 0 || dropped > 0) this.opts.apply(items, dropped)
  }

  /** Forgets everything pending (e.g. when a new snapshot replaces the stream). */
  reset(): void {
    this.cancel()
    this.pending.clear()
    this.dropped = 0
  }

  dispose(): void {
    this.reset()
  }

  private schedule(): void {
    if (this.timer !== null) return
    // Clamped to [0, interval] so that a clock that jumps backwards cannot stall rendering.
    const wait = Math.min(this.opts.intervalMs, Math.max(0, this.opts.intervalMs - (this.now() - this.lastApply)))
    this.timer = this.setTimer(() => {
      this.timer = null
      if (!this.isPaused) this.flush()
    }, wait)
  }

  private cancel(): void {
    if (this.timer !== null) {
      this.clearTimer(this.timer)
      this.timer = null
    }
  }
}
