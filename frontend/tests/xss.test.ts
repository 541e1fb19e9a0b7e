// A payload, topic or client id is data, never markup: it must appear as text and create no element.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import MessageRow from '../src/components/MessageRow.vue'
import PayloadView from '../src/components/PayloadView.vue'
import type { MqttMessage } from '../src/types'

const IMG = '<img src=x onerror=alert(1)>'
const SCRIPT = '<script>alert("xss")</script>'

function msg(payload: string, topic = 'attack/test'): MqttMessage {
  return { topic, payload, encoding: 'utf-8', qos: 0, retain: false, timestamp: 1_700_000_000 }
}

describe('payloads render as text', () => {
  let alertSpy: ReturnType<typeof vi.fn>
  beforeEach(() => {
    alertSpy = vi.fn()
    vi.stubGlobal('alert', alertSpy)
  })
  afterEach(() => vi.unstubAllGlobals())

  for (const mode of ['text', 'json', 'hex'] as const) {
    it(`message row (${mode} view) shows <img onerror> and <script> payloads as text`, async () => {
      for (const payload of [IMG, SCRIPT]) {
        const w = mount(MessageRow, { props: { message: msg(payload), mode }, attachTo: document.body })
        const cell = w.get('[data-testid="message-payload"]')
        expect(w.find('img').exists()).toBe(false)
        expect(w.find('script').exists()).toBe(false)
        if (mode === 'hex') expect(cell.text()).toMatch(/^3c /)
        else expect(cell.text()).toContain(payload)
        w.unmount()
      }
      await nextTick()
      expect(alertSpy).not.toHaveBeenCalled()
    })
  }

  it('a topic with markup is shown as text too', () => {
    const w = mount(MessageRow, { props: { message: msg('x', `a/${IMG}`), mode: 'text' } })
    expect(w.get('[data-testid="message-topic"]').text()).toBe(`a/${IMG}`)
    expect(w.find('img').exists()).toBe(false)
  })

  it('the payload detail shows markup as text in every mode', () => {
    for (const mode of ['text', 'json', 'hex'] as const) {
      const w = mount(PayloadView, { props: { message: msg(`${IMG}${SCRIPT}`, `t/${SCRIPT}`), mode } })
      expect(w.find('img').exists()).toBe(false)
      expect(w.find('script').exists()).toBe(false)
      if (mode !== 'hex') expect(w.get('[data-testid="payload-view-body"]').text()).toBe(`${IMG}${SCRIPT}`)
      expect(w.get('[data-testid="payload-view-topic"]').text()).toBe(`t/${SCRIPT}`)
      w.unmount()
    }
    expect(alertSpy).not.toHaveBeenCalled()
  })

  it('markup inside a JSON string stays text when pretty-printed', () => {
    const w = mount(PayloadView, { props: { message: msg(JSON.stringify({ html: IMG })), mode: 'json' } })
    expect(w.find('img').exists()).toBe(false)
    expect(w.get('[data-testid="payload-view-body"]').text()).toContain(`"html": "${IMG}"`)
  })
})

describe('no v-html anywhere', () => {
  it('no component uses v-html or innerHTML', async () => {
    const files = import.meta.glob('../src/**/*.{vue,ts}', { query: '?raw', import: 'default', eager: true })
    expect(Object.keys(files).length).toBeGreaterThan(10)
    for (const [name, text] of Object.entries(files)) {
      expect(String(text), name).not.toMatch(/v-html|innerHTML|outerHTML|insertAdjacentHTML/)
    }
  })
})
