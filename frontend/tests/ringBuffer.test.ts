import { describe, expect, it } from 'vitest'
import { RingBuffer } from '../src/lib/ringBuffer'

describe('RingBuffer', () => {
  it('keeps items in arrival order until full', () => {
    const rb = new RingBuffer<number>(3)
    rb.push(1)
    rb.push(2)
    expect(rb.toArray()).toEqual([1, 2])
    expect(rb.toArrayNewestFirst()).toEqual([2, 1])
    expect(rb.length).toBe(2)
  })

  it('never grows past its capacity and keeps the newest items', () => {
    const rb = new RingBuffer<number>(2000)
    for (let i = 0; i < 5000; i++) rb.push(i)
    expect(rb.length).toBe(2000)
    expect(rb.at(0)).toBe(3000)
    expect(rb.newest()).toBe(4999)
    expect(rb.toArray()[1999]).toBe(4999)
  })

  it('pushMany reports evictions and handles batches larger than capacity', () => {
    const rb = new RingBuffer<number>(3)
    expect(rb.pushMany([1, 2])).toBe(0)
    expect(rb.pushMany([3, 4, 5, 6, 7])).toBe(4)
    expect(rb.toArray()).toEqual([5, 6, 7])
  })

  it('clear empties it', () => {
    const rb = new RingBuffer<string>(2)
    rb.pushMany(['a', 'b', 'c'])
    rb.clear()
    expect(rb.length).toBe(0)
    expect(rb.toArray()).toEqual([])
    rb.push('d')
    expect(rb.toArray()).toEqual(['d'])
  })

  it('rejects a capacity that is not a positive integer', () => {
    expect(() => new RingBuffer(0)).toThrow()
  })
})
