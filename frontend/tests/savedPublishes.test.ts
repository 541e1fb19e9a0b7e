import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import PublishTemplates from '../src/components/PublishTemplates.vue'
import PublishHistory from '../src/components/PublishHistory.vue'
import { publishLibrary } from '../src/stores/publishLibrary'

type Route = (init: RequestInit) => [number, unknown]

/** A fetch that answers by "METHOD path", recording each call. */
function server(routes: Record<string, Route>) {
  const calls: { key: string; body: unknown }[] = []
  const fetchMock = vi.fn(async (path: string, init: RequestInit) => {
    const key = `${init.method} ${path}`
    calls.push({ key, body: init.body ? JSON.parse(String(init.body)) : undefined })
    const route = routes[key]
    const [status, body] = route ? route(init) : [404, { error: `no route ${key}` }]
    return new Response(JSON.stringify(body), { status })
  })
  vi.stubGlobal('fetch', fetchMock)
  return calls
}

const LAMP = { id: 'abc123def456', name: 'Lamp on', topic: 'devices/lamp/set', payload: '{"on":true}', encoding: 'utf-8', qos: 1, retain: true, properties: { content_type: 'application/json' } }
const FORM = { topic: 'devices/lamp/set', payload: '{"on":true}', qos: 1, retain: true, encoding: 'utf-8' as const }

describe('saved publishes', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    publishLibrary.templates = []
    publishLibrary.history = []
  })

  it('saves the form as a named template with MQTT 5 properties, on the server', async () => {
    let saved: unknown[] = []
    const calls = server({
      'GET /api/publish/templates': () => [200, { templates: saved }],
      'POST /api/publish/templates': (init) => {
        saved = [{ ...JSON.parse(String(init.body)), id: 'abc123def456' }]
        return [201, saved[0]]
      },
    })
    const w = mount(PublishTemplates, { props: { current: FORM } })
    await flushPromises()
    await w.get('[data-testid="template-name"]').setValue('Lamp on')
    await w.get('[data-testid="template-properties"]').setValue('{"content_type": "application/json"}')
    await w.get('[data-testid="template-save-form"]').trigger('submit')
    await flushPromises()
    expect(calls.find((c) => c.key === 'POST /api/publish/templates')?.body).toEqual({ ...FORM, name: 'Lamp on', properties: { content_type: 'application/json' } })
    expect(w.findAll('[data-testid="template-row-name"]').map((n) => n.text())).toEqual(['Lamp on'])
    expect(w.get('[data-testid="template-row"]').text()).toContain('MQTT 5 properties: content_type')
  })

  it("shows the server's reason when a template is refused, and bad properties before sending", async () => {
    const calls = server({
      'GET /api/publish/templates': () => [200, { templates: [] }],
      'POST /api/publish/templates': () => [400, { error: "topic 'a/+' contains a wildcard (+ or #); publish needs an exact topic" }],
    })
    const w = mount(PublishTemplates, { props: { current: { ...FORM, topic: 'a/+' } } })
    await w.get('[data-testid="template-name"]').setValue('x')
    await w.get('[data-testid="template-properties"]').setValue('[1]')
    await w.get('[data-testid="template-save-form"]').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="template-error"]').text()).toMatch(/must be a JSON object/)
    expect(calls.some((c) => c.key === 'POST /api/publish/templates')).toBe(false)
    await w.get('[data-testid="template-properties"]').setValue('')
    await w.get('[data-testid="template-save-form"]').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="template-error"]').text()).toContain('contains a wildcard')
  })

  it('runs a template in one click and shows the result; the history comes from the server', async () => {
    server({
      'GET /api/publish/templates': () => [200, { templates: [LAMP] }],
      'POST /api/publish/templates/abc123def456/run': () => [200, { type: 'command_result', ok: true, error: null }],
      'GET /api/publish/history': () => [200, { publishes: [{ timestamp: 100, topic: 'devices/lamp/set', payload: '{"on":true}', qos: 1, retain: true, template: 'Lamp on', ok: true, status: 200, error: null }, { timestamp: 90, topic: 'a/2', payload: null, payload_chars: 20000, ok: false, status: 400, error: 'the broker at localhost:1883 is not connected' }], limit: 50 }],
    })
    const t = mount(PublishTemplates, { props: { current: FORM } })
    const h = mount(PublishHistory, { props: { nowMs: 101_000 } })
    await flushPromises()
    await t.get('[data-testid="template-run"]').trigger('click')
    await flushPromises()
    expect(t.get('[data-testid="template-result"]').text()).toBe('Published “Lamp on” to devices/lamp/set — the bridge confirmed it.')
    const rows = h.findAll('[data-testid="recent-publish"]')
    expect(rows).toHaveLength(2)
    expect(rows[0].text()).toContain('“Lamp on”')
    expect(rows[0].get('[data-testid="recent-publish-result"]').text()).toBe('✓ published')
    expect(rows[1].get('[data-testid="recent-publish-result"]').text()).toBe('✕ the broker at localhost:1883 is not connected')
    expect(rows[1].text()).toContain('20,000 characters, not kept')
    expect(localStorage.length).toBe(0)
  })
})
