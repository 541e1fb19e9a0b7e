const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 })
const nf1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 })

export function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

export const DASH = '—'

export function formatInt(v: unknown): string {
  return isNum(v) ? nf.format(v) : DASH
}

/** Rates: one decimal below 100, none above. */
export function formatRate(v: unknown): string {
  if (!isNum(v)) return DASH
  return Math.abs(v) < 100 ? nf1.format(v) : nf.format(v)
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

export function formatBytes(v: unknown): string {
  if (!isNum(v)) return DASH
  let n = Math.abs(v)
  let u = 0
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024
    u++
  }
  const s = u === 0 ? nf.format(n) : nf1.format(n)
  return `${v < 0 ? '-' : ''}${s} ${UNITS[u]}`
}

/** 0 → "0s", 75 → "1m 15s", 90061 → "1d 1h 1m". Shows the two or three largest units. */
export function formatDuration(seconds: unknown): string {
  if (!isNum(seconds) || seconds < 0) return DASH
  let s = Math.floor(seconds)
  const d = Math.floor(s / 86400)
  s -= d * 86400
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  if (d > 0) return `${d}d ${h}h ${m}m`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s}s`
  return `${s}s`
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0')
}

/** Local wall-clock time with milliseconds, for message rows. */
export function formatTime(unixSeconds: unknown): string {
  if (!isNum(unixSeconds)) return DASH
  const d = new Date(unixSeconds * 1000)
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

/** Local date and time, e.g. "2025-11-22 12:35:07". */
export function formatDateTime(unixSeconds: unknown): string {
  if (!isNum(unixSeconds)) return DASH
  const d = new Date(unixSeconds * 1000)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** "12s ago", "3m ago", "2h ago". */
export function formatAgo(unixSeconds: unknown, nowMs: number = Date.now()): string {
  if (!isNum(unixSeconds)) return DASH
  const diff = Math.max(0, nowMs / 1000 - unixSeconds)
  if (diff < 1) return 'just now'
  return `${formatDuration(diff).split(' ')[0]} ago`
}

/**
 * An MQTT protocol as people name it. The bridge already sends "MQTT 3.1", "MQTT 3.1.1" or
 * "MQTT 5"; a list published by an older bridge may hold mosquitto's own numbers (2.0 logs p1 for
 * 3.1 and p2 for 3.1.1, 2.1 logs p3 and p4; p5 is MQTT 5 in both) or "MQTT 5.0".
 */
export function protocolName(v: unknown): string {
  if (typeof v !== 'string' || !v) return '—'
  const named: Record<string, string> = { p1: 'MQTT 3.1', p2: 'MQTT 3.1.1', p3: 'MQTT 3.1', p4: 'MQTT 3.1.1', p5: 'MQTT 5' }
  return named[v] ?? (v === 'MQTT 5.0' ? 'MQTT 5' : v)
}
