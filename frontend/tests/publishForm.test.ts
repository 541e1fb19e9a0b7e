import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import PublishForm from '../src/components/PublishForm.vue'
import { RECENT_KEY } from '../src/stores/recentPublishes'

function respond(status: number, body: unknown) {
  return vi.fn().mockResolvedValue(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))
}

async function fill(w: ReturnType<typeof mount>, topic: string, payload: string) {
  await w.get('[data-testid="publish-topic"]').setValue(topic)
  await w.get('[data-testid="publish-payload"]').setValue(payload)
}

describe('PublishForm', () => {
  beforeEach(() => {
    localStorage.clear()
  })
  afterEach(() => vi.unstubAllGlobals())

  it('sends the form as JSON and shows the bridge confirmation', async () => {
    const fetchMock = respond(200, { type: 'command_result', id: 'abc', command: 'cmd_publish', ok: true, error: null })
    vi.stubGlobal('fetch', fetchMock)
    const w = mount(PublishForm)
    await fill(w, 'devices/lamp/set', '{"on": true}')
    await w.get('[data-testid="publish-qos"]').setValue('1')
    await w.get('[data-testid="publish-retain"]').setValue(true)
    await w.get('form').trigger('submit')
    await flushPromises()
    const [url, init] = fetchMock.mock.calls[0]
    expect(url).toBe('/api/publish')
    expect(init.method).toBe('POST')
    expect(JSON.parse(init.body)).toEqual({ topic: 'devices/lamp/set', payload: '{"on": true}', qos: 1, retain: true, encoding: 'utf-8' })
    const result = w.get('[data-testid="publish-result"]')
    expect(result.attributes('data-ok')).toBe('true')
    expect(result.text()).toContain('Published to devices/lamp/set')
    // the server keeps the publish history: nothing about it stays in the browser
    expect(fetchMock.mock.calls[1][0]).toBe('/api/publish/history')
    expect(localStorage.getItem(RECENT_KEY)).toBeNull()
    expect(localStorage.length).toBe(0)
  })

  it("shows the bridge's error when it refuses", async () => {
    vi.stubGlobal('fetch', respond(400, { error: 'the broker is disconnected; nothing was published' }))
    const w = mount(PublishForm)
    await fill(w, 'a/b', 'x')
    await w.get('form').trigger('submit')
    await flushPromises()
    const result = w.get('[data-testid="publish-result"]')
    expect(result.attributes('data-ok')).toBe('false')
    expect(result.text()).toContain('the broker is disconnected; nothing was published')
  })

  it('says plainly when the bridge did not answer (504)', async () => {
    vi.stubGlobal('fetch', respond(504, { error: 'the bridge did not answer within 5 s' }))
    const w = mount(PublishForm)
    await fill(w, 'a/b', 'x')
    await w.get('form').trigger('submit')
    await flushPromises()
    const text = w.get('[data-testid="publish-result"]').text()
    expect(text).toContain('The bridge did not answer')
    expect(text).toContain('Is the bridge running')
  })

  it('shows an error payload from the server as text, not markup', async () => {
    vi.stubGlobal('fetch', respond(400, { error: 'bad topic <img src=x onerror=alert(1)>' }))
    const w = mount(PublishForm)
    await fill(w, 'a/b', 'x')
    await w.get('form').trigger('submit')
    await flushPromises()
    expect(w.find('img').exists()).toBe(false)
    expect(w.get('[data-testid="publish-result"]').text()).toContain('<img src=x onerror=alert(1)>')
  })

  it('catches wildcard topics and bad base64 before sending', async () => {
    const fetchMock = vi.fn()
    vi.stubGlobal('fetch', fetchMock)
    const w = mount(PublishForm)
    await fill(w, 'a/#', 'x')
    await w.get('form').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="publish-result"]').text()).toMatch(/wildcards/)
    await fill(w, 'a/b', 'not base64!')
    await w.get('[data-testid="publish-encoding"]').setValue('base64')
    await w.get('form').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="publish-result"]').text()).toMatch(/not valid base64/)
    expect(fetchMock).not.toHaveBeenCalled()
  })

  it('reports an unreachable server', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))
    const w = mount(PublishForm)
    await fill(w, 'a/b', 'x')
    await w.get('form').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="publish-result"]').text()).toContain('cannot be reached')
  })

  it('takes a draft (re-send / publish to this topic)', async () => {
    const w = mount(PublishForm, { props: { draft: { topic: 't/1', payload: 'AAE=', qos: 2, retain: true, encoding: 'base64' } } })
    expect((w.get('[data-testid="publish-topic"]').element as HTMLInputElement).value).toBe('t/1')
    expect((w.get('[data-testid="publish-qos"]').element as HTMLSelectElement).value).toBe('2')
    expect(w.emitted('draftUsed')).toHaveLength(1)
  })
})
