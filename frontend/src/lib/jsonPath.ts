// Paths into JSON values, as people write them: `sensors[0].temp`, `["a b"].c`; "" is the value itself.
import type { MqttMessage } from '../types'
import { payloadText, tryParseJson } from './payload'
import { decodeMessage, type DecoderChoice } from './decoders'

type Key = string | number

const IDENT = /^[A-Za-z_$][\w$]*$/
const MAX_PATHS = 200
const MAX_DEPTH = 8

export function formatPath(keys: readonly Key[]): string {
  let out = ''
  for (const k of keys) {
    if (typeof k === 'number') out += `[${k}]`
    else if (IDENT.test(k)) out += out ? `.${k}` : k
    else out += `[${JSON.stringify(k)}]`
  }
  return out
}

/** The keys of a path; null when it is not one (`a..b`, `a[x]`). */
export function parsePath(path: string): Key[] | null {
  const keys: Key[] = []
  let i = 0
  const s = path.trim()
  while (i < s.length) {
    if (s[i] === '.') {
      if (i === 0 || s[i + 1] === '.' || s[i + 1] === '[' || i === s.length - 1) return null
      i++
      continue
    }
    if (s[i] === '[') {
      const close = s.indexOf(']', i)
      if (close < 0) return null
      const inner = s.slice(i + 1, close)
      if (/^\d+$/.test(inner)) keys.push(Number(inner))
      else if (inner.startsWith('"')) {
        // a quoted key may itself hold "]": find the closing quote first
        let end = i + 1
        let text: unknown
        for (end = s.indexOf('"]', i + 2); end >= 0; end = s.indexOf('"]', end + 1)) {
          try {
            text = JSON.parse(s.slice(i + 1, end + 1))
            break
          } catch {
            // keep looking
          }
        }
        if (typeof text !== 'string' || end < 0) return null
        keys.push(text)
        i = end + 2
        continue
      } else return null
      i = close + 1
      continue
    }
    const m = /^[^.[\]]+/.exec(s.slice(i))
    if (!m) return null
    keys.push(m[0])
    i += m[0].length
  }
  return keys
}

/** The number at a path, or null (missing, not a number, not finite). */
export function numberAt(value: unknown, path: string): number | null {
  const keys = parsePath(path)
  if (!keys) return null
  let cur: unknown = value
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return null
    if (typeof k === 'number') {
      if (!Array.isArray(cur)) return null
      cur = cur[k]
    } else {
      if (Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, k)) return null
      cur = (cur as Record<string, unknown>)[k]
    }
  }
  return typeof cur === 'number' && Number.isFinite(cur) ? cur : null
}

/** Every path that holds a number, in document order (bounded). */
export function numericPaths(value: unknown): string[] {
  const out: string[] = []
  const walk = (v: unknown, keys: Key[]): void => {
    if (out.length >= MAX_PATHS) return
    if (typeof v === 'number') {
      if (Number.isFinite(v)) out.push(formatPath(keys))
      return
    }
    if (v === null || typeof v !== 'object' || keys.length >= MAX_DEPTH) return
    if (Array.isArray(v)) v.forEach((child, i) => walk(child, [...keys, i]))
    else for (const [k, child] of Object.entries(v)) walk(child, [...keys, k])
  }
  walk(value, [])
  return out
}

/** A message's payload as a value to pick fields from: decoded, JSON, or a plain number. */
export function payloadValue(msg: MqttMessage, choice: DecoderChoice): unknown {
  if (msg.truncated) return undefined
  const decoded = decodeMessage(msg, choice)
  if (decoded?.ok) return decoded.value
  const text = payloadText(msg).trim()
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text)
  return tryParseJson(text)
}
