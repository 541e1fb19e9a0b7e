import { reactive } from 'vue'
import type { MqttMessage, TopicIndexEntry } from '../types'
import type { TopicInfo } from '../lib/topicTree'
import { renderPayload } from '../lib/payload'

const PREVIEW_CHARS = 200

export interface TopicStoreOptions {
  /** Most topics kept (the bridge's TOPICS_MAX defaults to 10,000). */
  maxTopics?: number
  /** Minimum time between two rebuilds of the tree (default 1 s). */
  intervalMs?: number
  setTimer?: (fn: () => void, ms: number) => unknown
}

export function previewOf(m: Pick<MqttMessage, 'payload' | 'encoding'>): string {
  const r = renderPayload(m, 'text', true)
  const text = r.note && r.note.startsWith('binary') ? `[${r.note}] ${r.text}` : r.text
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text
}

/** The topic index (from topics_update) merged with live messages. */
export function createTopicStore(opts: TopicStoreOptions = {}) {
  const maxTopics = opts.maxTopics ?? 20000
  const interval = opts.intervalMs ?? 1000
  const setTimer = opts.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms))
  const map = new Map<string, TopicInfo>()
  let scheduled = false

  const state = reactive({ version: 0, count: 0, indexUpdatedAt: null as number | null })

  function bump(): void {
    if (scheduled) return
    scheduled = true
    setTimer(() => {
      scheduled = false
      state.count = map.size
      state.version++
    }, interval)
  }

  function bumpNow(): void {
    state.count = map.size
    state.version++
  }

  function applyIndex(entries: TopicIndexEntry[] | null | undefined, at?: number, immediate = false): void {
    if (!Array.isArray(entries)) return
    for (const e of entries) {
      if (!e || typeof e.topic !== 'string') continue
      const cur = map.get(e.topic)
      const count = typeof e.messages === 'number' ? e.messages : 0
      const seen = typeof e.last_seen === 'number' ? e.last_seen : null
      if (!cur) {
        if (map.size >= maxTopics) continue
        map.set(e.topic, {
          topic: e.topic,
          messages: count,
          lastSeen: seen,
          retained: Boolean(e.retained),
          retainedValue: e.retained_payload_preview ?? null,
          lastValue: e.last_payload_preview ?? null,
        })
      } else {
        // The index is authoritative for counts, but live messages may be newer than it.
        cur.messages = Math.max(cur.messages, count)
        cur.retained = Boolean(e.retained)
        cur.retainedValue = e.retained_payload_preview ?? null
        if (seen !== null && (cur.lastSeen === null || seen >= cur.lastSeen)) {
          cur.lastSeen = seen
          if (e.last_payload_preview != null) cur.lastValue = e.last_payload_preview
        }
      }
    }
    if (typeof at === 'number') state.indexUpdatedAt = at
    if (immediate) bumpNow()
    else bump()
  }

  function applyMessages(messages: readonly MqttMessage[]): void {
    for (const m of messages) {
      let cur = map.get(m.topic)
      if (!cur) {
        if (map.size >= maxTopics) continue
        cur = { topic: m.topic, messages: 0, lastSeen: null, retained: false, lastValue: null }
        map.set(m.topic, cur)
      }
      cur.messages++
      if (cur.lastSeen === null || m.timestamp >= cur.lastSeen) {
        cur.lastSeen = m.timestamp
        cur.lastValue = previewOf(m)
        if (m.retain) cur.retained = true
      }
    }
    bump()
  }

  return {
    state,
    applyIndex,
    applyMessages,
    get: (topic: string) => map.get(topic) ?? null,
    /** Not reactive: read it inside a computed that depends on state.version. */
    all: () => map.values(),
    clear: () => {
      map.clear()
      bumpNow()
    },
  }
}

export type TopicStore = ReturnType<typeof createTopicStore>
