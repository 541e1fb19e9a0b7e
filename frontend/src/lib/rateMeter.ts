/**
 * Counts events in one-second buckets and reports the average rate over a sliding window.
 */
export class RateMeter {
  private buckets = new Map<number, number>()

  constructor(private readonly windowSeconds = 5) {}

  add(count: number, nowMs: number = Date.now()): void {
    if (!(count > 0)) return
    const sec = Math.floor(nowMs / 1000)
    this.buckets.set(sec, (this.buckets.get(sec) ?? 0) + count)
    this.prune(sec)
  }

  /** Events per second over the last full `windowSeconds` seconds (the current partial second excluded). */
  rate(nowMs: number = Date.now()): number {
    const sec = Math.floor(nowMs / 1000)
    this.prune(sec)
    let sum = 0
    for (const [s, c] of this.buckets) if (s < sec && s >= sec - this.windowSeconds) sum += c
    return sum / this.windowSeconds
  }

  reset(): void {
    this.buckets.clear()
  }

  private prune(sec: number): void {
    for (const s of this.buckets.keys()) if (s < sec - this.windowSeconds) this.buckets.delete(s)
  }
}
