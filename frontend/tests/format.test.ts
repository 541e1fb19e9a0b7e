import { describe, expect, it } from 'vitest'
import { formatAgo, formatBytes, formatDuration, formatRate } from '../src/lib/format'

describe('format', () => {
  it('shows uptime the way a person reads it', () => {
    expect(formatDuration(0)).toBe('0s')
    expect(formatDuration(75)).toBe('1m 15s')
    expect(formatDuration(3 * 3600 + 120)).toBe('3h 2m')
    expect(formatDuration(90061)).toBe('1d 1h 1m')
    expect(formatDuration(undefined)).toBe('—')
    expect(formatDuration(null)).toBe('—')
  })

  it('shows bytes with binary units', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(1536)).toMatch(/^1[.,]5 KiB$/)
    expect(formatBytes('x')).toBe('—')
  })

  it('shows rates and ages', () => {
    expect(formatRate(NaN)).toBe('—')
    expect(formatAgo(100, 160_000)).toBe('1m ago')
    expect(formatAgo(100, 100_200)).toBe('just now')
  })
})
