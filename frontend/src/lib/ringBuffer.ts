/**
 * A fixed-capacity FIFO: pushing past capacity evicts the oldest item.
 * Memory stays bounded whatever the input rate.
 */
export class RingBuffer<T> {
  private items: (T | undefined)[]
  private head = 0 // index of the oldest item
  private size = 0

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('capacity must be a positive integer')
    this.items = new Array<T | undefined>(capacity)
  }

  get length(): number {
    return this.size
  }

  /** Adds one item; returns true when an older item was evicted to make room. */
  push(item: T): boolean {
    if (this.size < this.capacity) {
      this.items[(this.head + this.size) % this.capacity] = item
      this.size++
      return false
    }
    this.items[this.head] = item
    this.head = (this.head + 1) % this.capacity
    return true
  }

  /** Adds many items; returns how many items were evicted. */
  pushMany(items: readonly T[]): number {
    let evicted = 0
    // Only the last `capacity` items can survive: skip the rest outright.
    const start = Math.max(0, items.length - this.capacity)
    evicted += start
    for (let i = start; i < items.length; i++) if (this.push(items[i])) evicted++
    return evicted
  }

  /** i = 0 is the oldest item. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.size) return undefined
    return this.items[(this.head + i) % this.capacity]
  }

  newest(): T | undefined {
    return this.at(this.size - 1)
  }

  /** Oldest first. */
  toArray(): T[] {
    const out = new Array<T>(this.size)
    for (let i = 0; i < this.size; i++) out[i] = this.items[(this.head + i) % this.capacity] as T
    return out
  }

  /** Newest first. */
  toArrayNewestFirst(): T[] {
    const out = new Array<T>(this.size)
    for (let i = 0; i < this.size; i++) out[i] = this.items[(this.head + this.size - 1 - i) % this.capacity] as T
    return out
  }

  clear(): void {
    this.items = new Array<T | undefined>(this.capacity)
    this.head = 0
    this.size = 0
  }
}
