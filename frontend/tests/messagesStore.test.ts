import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMessageStore } from '../src/stores/messages'
import type { MqttMessage } from '../src/types'

function msg(topic: string, payload: string, timestamp = 1000): MqttMessage {
  return { type: 'message_received', topic, payload, encoding: 'utf-8', qos: 0, retain: false, timestamp }
}

describe('message store', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('keeps at most 2,000 messages at 5,000 msg/s, newest first', () => {
    const store = createMessageStore()
    // One second at 5,000 msg/s: 10 frames of 200 messages (+300 skipped each), as the server sends them.
    let n = 0
    for (let f = 0; f < 10; f++) {
      store.ingestFrame({ messages: Array.from({ length: 200 }, () => msg('load/test', String(n++))), skipped: 300 })
      vi.advanceTimersByTime(100)
    }
    for (let f = 0; f < 10; f++) {
      store.ingestFrame({ messages: Array.from({ length: 200 }, () => msg('load/test', String(n++))), skipped: 300 })
      vi.advanceTimersByTime(100)
    }
    expect(store.visible.value).toHaveLength(2000)
    expect(store.visible.value[0].msg.payload).toBe('3999')
    expect(store.visible.value[1999].msg.payload).toBe('2000')
  })

  it('counts skipped messages in the rate the user sees', () => {
    const store = createMessageStore()
    vi.setSystemTime(10_000)
    for (let s = 0; s < 5; s++) {
      for (let f = 0; f < 10; f++) {
        store.ingestFrame({ messages: Array.from({ length: 200 }, () => msg('a', 'x')), skipped: 300 })
        vi.advanceTimersByTime(100)
      }
    }
    store.tick()
    expect(store.state.rate).toBe(5000)
    expect(store.state.received).toBe(10000)
    expect(store.state.skipped).toBe(15000)
  })

  it('shows new messages only on the render tick, not per frame', () => {
    const store = createMessageStore()
    store.ingestFrame({ messages: [msg('a', '1')], skipped: 0 })
    store.ingestFrame({ messages: [msg('a', '2')], skipped: 0 })
    expect(store.visible.value).toHaveLength(0)
    const before = store.state.version
    vi.advanceTimersByTime(100)
    expect(store.visible.value.map((s) => s.msg.payload)).toEqual(['2', '1'])
    expect(store.state.version).toBe(before + 1)
  })

  it('pause freezes the list, buffers boundedly, and resume shows the newest', () => {
    const store = createMessageStore({ capacity: 100 })
    store.ingestFrame({ messages: [msg('a', 'before')] })
    vi.advanceTimersByTime(100)
    store.pause()
    for (let i = 0; i < 500; i++) store.ingestFrame({ messages: [msg('a', `p${i}`)] })
    vi.advanceTimersByTime(1000)
    store.tick()
    expect(store.visible.value.map((s) => s.msg.payload)).toEqual(['before'])
    expect(store.state.pending).toBe(100)
    store.resume()
    expect(store.visible.value).toHaveLength(100)
    expect(store.visible.value[0].msg.payload).toBe('p499')
    expect(store.state.droppedWhilePaused).toBe(400)
  })

  it('filters by MQTT wildcard and by text, locally', () => {
    const store = createMessageStore()
    store.loadSnapshot([
      msg('sensors/kitchen/temp', '21.5'),
      msg('sensors/hall/temp', '19'),
      msg('sensors/hall/humidity', '40'),
      msg('$SYS/broker/uptime', '100 seconds'),
      msg('lights/hall', 'ON'),
    ])
    store.state.topicFilter = 'sensors/+/temp'
    expect(store.visible.value.map((s) => s.msg.topic)).toEqual(['sensors/hall/temp', 'sensors/kitchen/temp'])
    store.state.topicFilter = '#'
    expect(store.visible.value.map((s) => s.msg.topic)).not.toContain('$SYS/broker/uptime')
    store.state.topicFilter = ''
    store.state.textFilter = 'HALL'
    expect(store.visible.value.map((s) => s.msg.topic)).toEqual(['lights/hall', 'sensors/hall/humidity', 'sensors/hall/temp'])
    store.state.textFilter = 'on'
    expect(store.visible.value.map((s) => s.msg.payload)).toEqual(['ON', '100 seconds'])
  })

  it('a snapshot replaces the stream (no duplicates after a reconnect)', () => {
    const store = createMessageStore()
    const history = [msg('a', '1'), msg('a', '2')]
    store.loadSnapshot(history)
    store.loadSnapshot(history)
    expect(store.visible.value).toHaveLength(2)
  })

  it('ignores malformed frames and messages', () => {
    const store = createMessageStore()
    store.ingestFrame(null)
    store.ingestFrame({ messages: [null as unknown as MqttMessage, { topic: 'ok', payload: 5 } as unknown as MqttMessage] })
    vi.advanceTimersByTime(100)
    expect(store.visible.value).toHaveLength(1)
    expect(store.visible.value[0].msg.payload).toBe('5')
  })

  it('feeds every incoming message to the topic tree even while paused', () => {
    const seen: string[] = []
    const store = createMessageStore({ onMessages: (l) => seen.push(...l.map((m) => m.topic)) })
    store.pause()
    store.ingestFrame({ messages: [msg('a/b', '1'), msg('a/c', '2')] })
    expect(seen).toEqual(['a/b', 'a/c'])
  })
})
