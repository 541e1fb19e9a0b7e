import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import MessageRow from '../src/components/MessageRow.vue'

describe('MessageRow', () => {
  it('keeps multi-line payloads on one line', () => {
    const w = mount(MessageRow, { props: { message: { topic: 'a', payload: 'line 1\nline 2\r\n\tx', timestamp: 1 }, mode: 'text' } })
    expect(w.get('[data-testid="message-payload"]').text()).toBe('line 1↵line 2↵ x')
  })

  it('shows binary payloads as hex in every mode, marked as binary', () => {
    for (const mode of ['text', 'json', 'hex'] as const) {
      const w = mount(MessageRow, { props: { message: { topic: 'cam', payload: 'iVBORw0KGgo=', encoding: 'base64', timestamp: 1 }, mode } })
      expect(w.get('[data-testid="message-payload"]').text()).toContain('89 50 4e 47 0d 0a 1a 0a')
      expect(w.text()).toContain('bin')
    }
  })

  it('shows flags for QoS and retained messages', () => {
    const w = mount(MessageRow, { props: { message: { topic: 'a', payload: 'x', qos: 2, retain: true, timestamp: 1 }, mode: 'text' } })
    expect(w.text()).toContain('Q2')
    expect(w.find('[title="Retained"]').exists()).toBe(true)
  })

  it('shows a compact JSON line in JSON mode', () => {
    const w = mount(MessageRow, { props: { message: { topic: 'a', payload: '{ "a" : 1,\n "b": 2 }', timestamp: 1 }, mode: 'json' } })
    expect(w.get('[data-testid="message-payload"]').text()).toBe('{"a":1,"b":2}')
  })

  it('emits select when clicked', async () => {
    const w = mount(MessageRow, { props: { message: { topic: 'a', payload: 'x', timestamp: 1 }, mode: 'text' } })
    await w.trigger('click')
    expect(w.emitted('select')).toHaveLength(1)
  })
})
