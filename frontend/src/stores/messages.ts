import { computed, reactive } from 'vue'
import { FrameCoalescer } from '../lib/coalescer'
import { RingBuffer } from '../lib/ringBuffer'
import { RateMeter } from '../lib/rateMeter'
import { topicMatches } from '../lib/mqttMatch'
import { payloadText } from '../lib/payload'
import type { MessagesFrame, MqttMessage, PayloadMode, StoredMessage } from '../types'

export interface MessageStoreOptions {
  /** Messages kept for display (default 2,000). */
  capacity?: number
  /** Minimum time between two renders of new messages (default 100 ms). */
  intervalMs?: number
  now?: () => number
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (h: unknown) => void
  /** Called with every batch of incoming messages (even while paused), for the topic tree. */
  onMessages?: (messages: MqttMessage[]) => void
}

function isMessage(m: unknown): m is MqttMessage {
  return !!m && typeof m === 'object' && typeof (m as MqttMessage).topic === 'string'
}

function normalise(m: MqttMessage): MqttMessage {
  if (typeof m.payload !== 'string') m.payload = m.payload == null ? '' : String(m.payload)
  if (typeof m.timestamp !== 'number') m.timestamp = Date.now() / 1000
  return m
}

/** Keeps the live message stream: bounded, coalesced to ~10 renders per second, pausable. */
export function createMessageStore(opts: MessageStoreOptions = {}) {
  const capacity = opts.capacity ?? 2000
  const now = opts.now ?? (() => Date.now())
  const buffer = new RingBuffer<StoredMessage>(capacity)
  const meter = new RateMeter(5)
  let seq = 0
  // Raw counters, copied to the reactive state at most on each render tick.
  let received = 0
  let skipped = 0

  const state = reactive({
    /** Bumped whenever the displayed buffer changes. */
    version: 0,
    paused: false,
    topicFilter: '',
    textFilter: '',
    mode: 'text' as PayloadMode,
    /** Messages the server sent (received) and left out of frames (skipped), since the page loaded. */
    received: 0,
    skipped: 0,
    /** Messages per second arriving for this page, skipped ones included. */
    rate: 0,
    /** Messages waiting while paused (bounded to capacity). */
    pending: 0,
    /** Messages dropped from the pause buffer because it was full. */
    droppedWhilePaused: 0,
  })

  const coalescer = new FrameCoalescer<StoredMessage>({
    intervalMs: opts.intervalMs ?? 100,
    maxPending: capacity,
    now,
    setTimer: opts.setTimer,
    clearTimer: opts.clearTimer,
    apply: (items, dropped) => {
      buffer.pushMany(items)
      if (dropped > 0) state.droppedWhilePaused += dropped
      sync()
      state.version++
    },
  })

  function sync(): void {
    state.received = received
    state.skipped = skipped
    state.pending = coalescer.pendingCount
  }

  function wrap(list: MqttMessage[]): StoredMessage[] {
    return list.map((msg) => ({ seq: ++seq, msg }))
  }

  function ingestFrame(frame: MessagesFrame | null | undefined): void {
    if (!frame || typeof frame !== 'object') return
    const list = Array.isArray(frame.messages) ? frame.messages.filter(isMessage).map(normalise) : []
    const skip = typeof frame.skipped === 'number' && frame.skipped > 0 ? frame.skipped : 0
    received += list.length
    skipped += skip
    meter.add(list.length + skip, now())
    if (list.length === 0) return
    opts.onMessages?.(list)
    coalescer.push(wrap(list))
  }

  /** A snapshot (on every socket connect) replaces the stream with the server's recent history. */
  function loadSnapshot(messages: MqttMessage[] | null | undefined): void {
    coalescer.reset()
    buffer.clear()
    const list = Array.isArray(messages) ? messages.filter(isMessage).map(normalise) : []
    buffer.pushMany(wrap(list))
    if (list.length) opts.onMessages?.(list)
    sync()
    state.version++
  }

  function pause(): void {
    state.paused = true
    coalescer.pause()
  }

  function resume(): void {
    state.paused = false
    coalescer.resume()
    sync()
  }

  function clear(): void {
    coalescer.reset()
    buffer.clear()
    state.droppedWhilePaused = 0
    sync()
    state.version++
  }

  /** Called once a second: refreshes the rate and the counters shown. */
  function tick(): void {
    state.rate = meter.rate(now())
    sync()
  }

  function matches(m: MqttMessage, topicFilter: string, text: string): boolean {
    if (topicFilter && !topicMatches(topicFilter, m.topic)) return false
    if (!text) return true
    return m.topic.toLowerCase().includes(text) || payloadText(m).toLowerCase().includes(text)
  }

  /** The messages to show, newest first, after the topic and text filters. */
  const visible = computed<StoredMessage[]>(() => {
    void state.version
    const tf = state.topicFilter.trim()
    const text = state.textFilter.trim().toLowerCase()
    const all = buffer.toArrayNewestFirst()
    if (!tf && !text) return all
    return all.filter((s) => matches(s.msg, tf, text))
  })

  return {
    state,
    visible,
    capacity,
    ingestFrame,
    loadSnapshot,
    pause,
    resume,
    clear,
    tick,
    /** All kept messages, oldest first (not reactive). */
    all: () => buffer.toArray().map((s) => s.msg),
    /** Applies pending messages now (tests). */
    flush: () => coalescer.flush(),
  }
}

export type MessageStore = ReturnType<typeof createMessageStore>
