// Differences between two successive messages: key by key for JSON, line by line for text.
import type { MqttMessage } from '../types'
import { payloadText, tryParseJson } from './payload'
import { decodeMessage, type DecoderChoice } from './decoders'

export interface JsonChange {
  path: string
  kind: 'added' | 'removed' | 'changed'
  before?: string
  after?: string
}

export interface LineChange {
  kind: 'same' | 'added' | 'removed'
  text: string
}

export type MessageDiff =
  | { kind: 'json'; changes: JsonChange[]; unchanged: number }
  | { kind: 'text'; lines: LineChange[]; added: number; removed: number }

const MAX_LEAVES = 5_000
const IDENT = /^[A-Za-z_$][\w$]*$/

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  if (IDENT.test(key)) return path ? `${path}.${key}` : key
  return `${path}[${JSON.stringify(key)}]`
}

/** Leaves of a JSON value by path (`sensors[0].temp`); empty objects and arrays are leaves too. */
export function flatten(value: unknown, path = '', out = new Map<string, string>()): Map<string, string> {
  if (out.size >= MAX_LEAVES) return out
  if (value !== null && typeof value === 'object') {
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value)
    if (entries.length === 0) out.set(path || '(root)', Array.isArray(value) ? '[]' : '{}')
    for (const [k, v] of entries) flatten(v, childPath(path, k), out)
    return out
  }
  out.set(path || '(root)', JSON.stringify(value) ?? String(value))
  return out
}

export function jsonDiff(before: unknown, after: unknown): { changes: JsonChange[]; unchanged: number } {
  const a = flatten(before)
  const b = flatten(after)
  const changes: JsonChange[] = []
  let unchanged = 0
  for (const [path, value] of b) {
    if (!a.has(path)) changes.push({ path, kind: 'added', after: value })
    else if (a.get(path) !== value) changes.push({ path, kind: 'changed', before: a.get(path), after: value })
    else unchanged++
  }
  for (const [path, value] of a) if (!b.has(path)) changes.push({ path, kind: 'removed', before: value })
  return { changes, unchanged }
}

const MAX_LCS_CELLS = 4_000_000

/** A line diff (longest common subsequence); very long texts fall back to common prefix and suffix. */
export function textDiff(before: string, after: string): LineChange[] {
  const a = before.split('\n')
  const b = after.split('\n')
  let start = 0
  while (start < a.length && start < b.length && a[start] === b[start]) start++
  let endA = a.length
  let endB = b.length
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--
    endB--
  }
  const out: LineChange[] = a.slice(0, start).map((text) => ({ kind: 'same' as const, text }))
  const midA = a.slice(start, endA)
  const midB = b.slice(start, endB)
  if (midA.length * midB.length > MAX_LCS_CELLS) {
    for (const text of midA) out.push({ kind: 'removed', text })
    for (const text of midB) out.push({ kind: 'added', text })
  } else {
    const n = midA.length
    const m = midB.length
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i][j] = midA[i] === midB[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
    let i = 0
    let j = 0
    while (i < n || j < m) {
      if (i < n && j < m && midA[i] === midB[j]) {
        out.push({ kind: 'same', text: midA[i] })
        i++
        j++
      } else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) {
        out.push({ kind: 'added', text: midB[j++] })
      } else {
        out.push({ kind: 'removed', text: midA[i++] })
      }
    }
  }
  for (const text of a.slice(endA)) out.push({ kind: 'same', text })
  return out
}

/** What a diff compares: the decoded value when a decoder applies, else JSON, else the text. */
function comparable(msg: MqttMessage, choice: DecoderChoice): { json: unknown } | { text: string } {
  const decoded = decodeMessage(msg, choice)
  if (decoded?.ok) return { json: decoded.value }
  const text = payloadText(msg)
  const json = tryParseJson(text)
  return json !== undefined && json !== null && typeof json === 'object' ? { json } : { text }
}

/** The change from `before` (the older message) to `after`. */
export function diffMessages(before: MqttMessage, after: MqttMessage, choice: DecoderChoice = 'auto'): MessageDiff {
  const a = comparable(before, choice)
  const b = comparable(after, choice)
  if ('json' in a && 'json' in b) return { kind: 'json', ...jsonDiff(a.json, b.json) }
  const ta = 'text' in a ? a.text : JSON.stringify(a.json, null, 2)
  const tb = 'text' in b ? b.text : JSON.stringify(b.json, null, 2)
  const lines = textDiff(ta, tb)
  return {
    kind: 'text',
    lines,
    added: lines.filter((l) => l.kind === 'added').length,
    removed: lines.filter((l) => l.kind === 'removed').length,
  }
}
