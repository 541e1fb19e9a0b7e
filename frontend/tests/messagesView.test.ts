// The message list at volume: only visible rows exist in the page, and payloads are text.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import MessagesView from '../src/views/MessagesView.vue'
import { messages } from '../src/stores'
import type { MqttMessage } from '../src/types'

function msg(i: number, payload = `value ${i}`): MqttMessage {
  return { topic: `sensors/${i % 10}/temp`, payload, encoding: 'utf-8', qos: 0, retain: false, timestamp: 1000 + i / 1000 }
}

describe('MessagesView', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    messages.clear()
  })
  afterEach(() => {
    messages.clear()
    vi.useRealTimers()
  })

  it('renders only the rows in view, however many messages are kept', async () => {
    const w = mount(MessagesView)
    for (let f = 0; f < 25; f++) messages.ingestFrame({ messages: Array.from({ length: 200 }, (_, i) => msg(f * 200 + i)), skipped: 0 })
    vi.advanceTimersByTime(100)
    await nextTick()
    const rows = w.findAll('[data-testid="message-row"]')
    expect(rows.length).toBeGreaterThan(5)
    expect(rows.length).toBeLessThan(60)
    expect(rows[0].get('[data-testid="message-payload"]').text()).toBe('value 4999')
    expect(w.text()).toContain('2,000')
    w.unmount()
  })

  it('shows a hostile payload as text in the live list', async () => {
    const w = mount(MessagesView, { attachTo: document.body })
    messages.ingestFrame({ messages: [msg(1, '<img src=x onerror=alert(1)>'), msg(2, '<script>alert(2)</script>')] })
    vi.advanceTimersByTime(100)
    await nextTick()
    const payloads = w.findAll('[data-testid="message-payload"]').map((p) => p.text())
    expect(payloads).toEqual(['<script>alert(2)</script>', '<img src=x onerror=alert(1)>'])
    expect(document.querySelector('.vlist img')).toBeNull()
    expect(document.querySelector('.vlist script')).toBeNull()
    w.unmount()
  })

  it('pause keeps the list still and resume brings the waiting messages', async () => {
    const w = mount(MessagesView)
    messages.ingestFrame({ messages: [msg(1)] })
    vi.advanceTimersByTime(100)
    await nextTick()
    await w.get('[data-testid="messages-pause"]').trigger('click')
    messages.ingestFrame({ messages: [msg(2), msg(3)] })
    vi.advanceTimersByTime(1000)
    messages.tick()
    await nextTick()
    expect(w.findAll('[data-testid="message-row"]')).toHaveLength(1)
    expect(w.get('[data-testid="messages-pause"]').text()).toContain('Resume (2 waiting)')
    await w.get('[data-testid="messages-pause"]').trigger('click')
    await nextTick()
    expect(w.findAll('[data-testid="message-row"]')).toHaveLength(3)
    w.unmount()
  })

  it('an invalid topic filter is explained and not applied', async () => {
    const w = mount(MessagesView)
    await w.get('[data-testid="messages-topic-filter"]').setValue('a/#/b')
    vi.advanceTimersByTime(400)
    await nextTick()
    expect(w.get('[data-testid="messages-filter-error"]').text()).toMatch(/last level/)
    expect(messages.state.topicFilter).toBe('')
    w.unmount()
  })

  it('export links carry the current filter', async () => {
    const w = mount(MessagesView)
    await w.get('[data-testid="messages-topic-filter"]').setValue('sensors/+/temp')
    vi.advanceTimersByTime(400)
    await nextTick()
    expect(w.get('[data-testid="export-csv"]').attributes('href')).toBe('/api/export?topic=sensors%2F%2B%2Ftemp&format=csv')
    expect(w.get('[data-testid="export-ndjson"]').attributes('href')).toBe('/api/export?topic=sensors%2F%2B%2Ftemp&format=ndjson')
    messages.state.topicFilter = ''
    w.unmount()
  })
})
