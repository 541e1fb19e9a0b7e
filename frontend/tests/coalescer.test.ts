import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FrameCoalescer } from '../src/lib/coalescer'

describe('FrameCoalescer', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  function make(maxPending = 1000) {
    const applied: { items: number[]; dropped: number }[] = []
    const c = new FrameCoalescer<number>({
      intervalMs: 100,
      maxPending,
      apply: (items, dropped) => applied.push({ items, dropped }),
    })
    return { c, applied }
  }

  it('applies many frames arriving together as one batch, in order', () => {
    const { c, applied } = make()
    for (let i = 0; i < 50; i++) c.push([i])
    expect(applied).toHaveLength(0)
    vi.advanceTimersByTime(100)
    expect(applied).toHaveLength(1)
    expect(applied[0].items).toEqual(Array.from({ length: 50 }, (_, i) => i))
  })

  it('renders at most ~10 times per second under continuous input', () => {
    const { c, applied } = make()
    // 5,000 messages/s as one frame per millisecond of 5 messages, for 2 seconds.
    for (let ms = 0; ms < 2000; ms++) {
      c.push([ms, ms, ms, ms, ms])
      vi.advanceTimersByTime(1)
    }
    vi.advanceTimersByTime(100)
    expect(applied.length).toBeGreaterThanOrEqual(19)
    expect(applied.length).toBeLessThanOrEqual(21)
    expect(applied.reduce((n, a) => n + a.items.length, 0)).toBe(10000)
  })

  it('keeps buffering while paused, bounded to the newest items, and applies them on resume', () => {
    const { c, applied } = make(100)
    c.pause()
    for (let i = 0; i < 1000; i++) c.push([i])
    vi.advanceTimersByTime(1000)
    expect(applied).toHaveLength(0)
    expect(c.pendingCount).toBe(100)
    c.resume()
    expect(applied).toHaveLength(1)
    expect(applied[0].items[0]).toBe(900)
    expect(applied[0].items[99]).toBe(999)
    expect(applied[0].dropped).toBe(900)
    expect(c.pendingCount).toBe(0)
  })

  it('reset forgets pending items', () => {
    const { c, applied } = make()
    c.push([1, 2, 3])
    c.reset()
    vi.advanceTimersByTime(500)
    expect(applied).toHaveLength(0)
  })
})
