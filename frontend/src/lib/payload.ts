import type { MqttMessage, PayloadMode } from '../types'

const encoder = new TextEncoder()
const lossyDecoder = new TextDecoder('utf-8', { fatal: false })

/** Decodes standard or URL-safe base64 (padding optional); null when it is not base64. */
export function base64ToBytes(b64: string): Uint8Array | null {
  let s = b64.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return null
  s = s.replace(/=+$/, '')
  if (s.length % 4 === 1) return null
  s += '='.repeat((4 - (s.length % 4)) % 4)
  let bin: string
  try {
    bin = atob(s)
  } catch {
    return null
  }
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = ''
  const chunk = 0x8000
  for (let i = 0; i < bytes.length; i += chunk) {
    bin += String.fromCharCode(...bytes.subarray(i, i + chunk))
  }
  return btoa(bin)
}

export function utf8ToBytes(text: string): Uint8Array {
  return encoder.encode(text)
}

export function isBase64(msg: Pick<MqttMessage, 'encoding'>): boolean {
  return msg.encoding === 'base64'
}

/** The payload's bytes: base64 payloads decoded, UTF-8 ones encoded. Null for invalid base64. */
export function payloadBytes(msg: Pick<MqttMessage, 'payload' | 'encoding'>): Uint8Array | null {
  const payload = typeof msg.payload === 'string' ? msg.payload : String(msg.payload ?? '')
  return isBase64(msg) ? base64ToBytes(payload) : utf8ToBytes(payload)
}

export function payloadSize(msg: Pick<MqttMessage, 'payload' | 'encoding'>): number {
  return payloadBytes(msg)?.length ?? 0
}

/** "48 65 6c 6c 6f"; with maxBytes, the rest is summarised as "… (+N bytes)". */
export function bytesToHex(bytes: Uint8Array, maxBytes = Infinity): string {
  const n = Math.min(bytes.length, maxBytes)
  const parts = new Array<string>(n)
  for (let i = 0; i < n; i++) parts[i] = bytes[i].toString(16).padStart(2, '0')
  let out = parts.join(' ')
  if (n < bytes.length) out += ` … (+${bytes.length - n} bytes)`
  return out
}

/** A classic hex dump: offset, 16 bytes in hex, and the printable ASCII. */
export function hexDump(bytes: Uint8Array, maxBytes = 64 * 1024): string {
  const n = Math.min(bytes.length, maxBytes)
  const lines: string[] = []
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n))
    const hex: string[] = []
    let ascii = ''
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex.push(row[i].toString(16).padStart(2, '0'))
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.'
      } else hex.push('  ')
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.slice(0, 8).join(' ')}  ${hex.slice(8).join(' ')}  |${ascii}|`)
  }
  if (n < bytes.length) lines.push(`… ${bytes.length - n} more bytes`)
  return lines.join('\n')
}

/** The payload as text: UTF-8 ones as they are, base64 ones decoded (invalid UTF-8 shown as U+FFFD). */
export function payloadText(msg: Pick<MqttMessage, 'payload' | 'encoding'>): string {
  const payload = typeof msg.payload === 'string' ? msg.payload : String(msg.payload ?? '')
  if (!isBase64(msg)) return payload
  const bytes = base64ToBytes(payload)
  return bytes ? lossyDecoder.decode(bytes) : payload
}

/** Parses JSON text; undefined when the text is not JSON. */
export function tryParseJson(text: string): unknown {
  const t = text.trim()
  if (t === '') return undefined
  const c = t[0]
  // Cheap pre-check so that ordinary text never reaches JSON.parse.
  if (!(c === '{' || c === '[' || c === '"' || c === '-' || (c >= '0' && c <= '9') || t === 'true' || t === 'false' || t === 'null')) {
    return undefined
  }
  try {
    return JSON.parse(t)
  } catch {
    return undefined
  }
}

export interface RenderedPayload {
  text: string
  /** A note for the reader, e.g. "not valid JSON, shown as text". */
  note?: string
}

/** The payload rendered for a view mode. `compact` gives one-line output for list rows. */
export function renderPayload(
  msg: Pick<MqttMessage, 'payload' | 'encoding'>,
  mode: PayloadMode,
  compact = false,
): RenderedPayload {
  if (mode === 'hex') {
    const bytes = payloadBytes(msg)
    if (!bytes) return { text: String(msg.payload ?? ''), note: 'invalid base64' }
    if (bytes.length === 0) return { text: '', note: 'empty payload' }
    return { text: compact ? bytesToHex(bytes, 96) : hexDump(bytes) }
  }
  if (compact && isBase64(msg)) {
    // Binary payloads in a list row: hex, whatever the mode, unless the bytes are text.
    const bytes = base64ToBytes(String(msg.payload ?? ''))
    if (bytes && !looksLikeText(bytes)) return { text: bytesToHex(bytes, 96), note: `binary, ${bytes.length} bytes` }
  }
  const text = payloadText(msg)
  if (mode === 'json') {
    const value = tryParseJson(text)
    if (value === undefined) return { text, note: 'not JSON, shown as text' }
    return { text: compact ? JSON.stringify(value) : JSON.stringify(value, null, 2) }
  }
  return { text }
}

/** One line for a list row: line breaks shown as ↵, other control characters as ·. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\r\n|\n|\r/g, '↵').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '·').replace(/\t/g, ' ')
}

/** True when most bytes are printable ASCII or valid UTF-8 (used to pick a row preview). */
export function looksLikeText(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return false
  }
  let control = 0
  for (const b of bytes) if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) control++
  return control === 0
}

// ---- numeric values in payloads -------------------------------------------------------------

const MAX_FIELDS = 12
const MAX_DEPTH = 4

/**
 * The numbers in a payload: a plain number gives {value: n}; a JSON object or array gives its numeric
 * leaves keyed by path ("temp", "sensor.humidity", "values.0"). Booleans and numeric strings are ignored.
 * Null when the payload holds no numbers.
 */
export function extractNumbers(text: string): Record<string, number> | null {
  const t = text.trim()
  if (t === '') return null
  const n = Number(t)
  if (Number.isFinite(n) && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return { value: n }
  const parsed = tryParseJson(t)
  if (parsed === undefined || parsed === null) return null
  if (typeof parsed === 'number') return Number.isFinite(parsed) ? { value: parsed } : null
  if (typeof parsed !== 'object') return null
  const out: Record<string, number> = {}
  let count = 0
  const walk = (v: unknown, path: string, depth: number): void => {
    if (count >= MAX_FIELDS) return
    if (typeof v === 'number') {
      if (Number.isFinite(v)) {
        out[path || 'value'] = v
        count++
      }
      return
    }
    if (v === null || typeof v !== 'object' || depth >= MAX_DEPTH) return
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && i < MAX_FIELDS; i++) walk(v[i], path ? `${path}.${i}` : String(i), depth + 1)
    } else {
      for (const [k, child] of Object.entries(v)) walk(child, path ? `${path}.${k}` : k, depth + 1)
    }
  }
  walk(parsed, '', 0)
  return count > 0 ? out : null
}

const TIME_NAME = /(^|[._-])(ts|timestamp|time|epoch|date|datetime)$|_at$/i
const YEAR = 366 * 86400

/** A field named like a timestamp, or whose values are all Unix times (s or ms) near the message's. */
function isTimestampField(name: string, rows: readonly { t: number; nums: Record<string, number> }[]): boolean {
  if (TIME_NAME.test(name)) return true
  let seen = 0
  for (const r of rows) {
    const v = r.nums[name]
    if (v === undefined) continue
    seen++
    if (v < 1e8 || (Math.abs(v - r.t) > YEAR && Math.abs(v / 1000 - r.t) > YEAR)) return false
  }
  return seen > 0
}

export interface NumericSeries {
  /** Unix seconds, ascending. */
  x: number[]
  /** Field name → values aligned with x (null where a message lacked that field). */
  fields: { name: string; values: (number | null)[] }[]
}

/**
 * Builds chartable series from messages (any order). The most frequent fields come first, at most
 * maxFields of them. Returns null when fewer than `minPoints` messages carry numbers.
 */
export function numericSeries(
  messages: readonly Pick<MqttMessage, 'payload' | 'encoding' | 'timestamp'>[],
  maxFields = 6,
  minPoints = 2,
): NumericSeries | null {
  const rows: { t: number; nums: Record<string, number> }[] = []
  const freq = new Map<string, number>()
  for (const m of messages) {
    if (typeof m.timestamp !== 'number' || !Number.isFinite(m.timestamp)) continue
    const nums = extractNumbers(payloadText(m))
    if (!nums) continue
    rows.push({ t: m.timestamp, nums })
    for (const k of Object.keys(nums)) freq.set(k, (freq.get(k) ?? 0) + 1)
  }
  if (rows.length < minPoints) return null
  // Timestamps inside payloads ("ts": 1700000000.5) are not values worth charting.
  for (const name of [...freq.keys()]) if (isTimestampField(name, rows)) freq.delete(name)
  if (freq.size === 0) return null
  rows.sort((a, b) => a.t - b.t)
  // Keep x strictly increasing (uPlot needs it): nudge equal timestamps by a microsecond.
  for (let i = 1; i < rows.length; i++) if (rows[i].t <= rows[i - 1].t) rows[i].t = rows[i - 1].t + 1e-6
  const names = [...freq.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, maxFields)
    .map(([k]) => k)
  return {
    x: rows.map((r) => r.t),
    fields: names.map((name) => ({ name, values: rows.map((r) => (name in r.nums ? r.nums[name] : null)) })),
  }
}
