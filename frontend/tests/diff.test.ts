import { afterEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { flushPromises } from '@vue/test-utils'
import DiffView from '../src/components/DiffView.vue'
import TopicDetail from '../src/components/TopicDetail.vue'
import { diffMessages, flatten, jsonDiff, textDiff } from '../src/lib/diff'
import type { MqttMessage } from '../src/types'

// uPlot (imported by TopicDetail's chart) asks matchMedia for the pixel ratio when it loads; jsdom has none.
vi.hoisted(() => {
  const list = { matches: false, addEventListener: () => {}, removeEventListener: () => {}, addListener: () => {}, removeListener: () => {} }
  window.matchMedia = (() => list) as unknown as typeof window.matchMedia
})

function msg(payload: string, timestamp = 1_700_000_000): MqttMessage {
  return { topic: 'plant/line1', payload, encoding: 'utf-8', timestamp }
}

describe('diff of successive messages', () => {
  it('JSON: changed, added and removed keys by path, nested objects and arrays included', () => {
    const before = { temp: 21.5, unit: 'C', sensors: [{ id: 1, ok: true }], meta: { fw: '1.0' } }
    const after = { temp: 22, unit: 'C', sensors: [{ id: 1, ok: false }, { id: 2, ok: true }], alarm: null }
    const { changes, unchanged } = jsonDiff(before, after)
    expect(changes).toEqual([
      { path: 'temp', kind: 'changed', before: '21.5', after: '22' },
      { path: 'sensors[0].ok', kind: 'changed', before: 'true', after: 'false' },
      { path: 'sensors[1].id', kind: 'added', after: '2' },
      { path: 'sensors[1].ok', kind: 'added', after: 'true' },
      { path: 'alarm', kind: 'added', after: 'null' },
      { path: 'meta.fw', kind: 'removed', before: '"1.0"' },
    ])
    expect(unchanged).toBe(2) // unit, sensors[0].id
  })

  it('keys that are not identifiers are quoted in the path', () => {
    expect([...flatten({ 'a b': { 'x.y': 1 } }).keys()]).toEqual(['["a b"]["x.y"]'])
  })

  it('text: lines added and removed, common lines kept', () => {
    expect(textDiff('a\nb\nc\nd', 'a\nc\nd\ne')).toEqual([
      { kind: 'same', text: 'a' },
      { kind: 'removed', text: 'b' },
      { kind: 'same', text: 'c' },
      { kind: 'same', text: 'd' },
      { kind: 'added', text: 'e' },
    ])
  })

  it('uses JSON when both payloads are JSON objects, text otherwise', () => {
    expect(diffMessages(msg('{"a":1}'), msg('{"a":2}')).kind).toBe('json')
    const d = diffMessages(msg('{"a":1}'), msg('on'))
    expect(d).toMatchObject({ kind: 'text', added: 1 })
    expect(diffMessages(msg('12.5'), msg('13')).kind).toBe('text')
  })

  it('the view lists JSON changes and shows markup as text', () => {
    const w = mount(DiffView, { props: { before: msg('{"label":"<b>x</b>","n":1}'), after: msg('{"label":"<img src=x>","n":1}', 1_700_000_005) } })
    expect(w.get('[data-testid="diff-summary"]').text()).toBe('JSON: 1 change, 1 unchanged')
    const row = w.get('[data-testid="diff-change"]')
    expect(row.text()).toContain('<img src=x>')
    expect(w.find('img').exists()).toBe(false)
    expect(w.find('b').exists()).toBe(false)
  })

  it('the view shows a line diff for text payloads', () => {
    const w = mount(DiffView, { props: { before: msg('state: idle\nspeed: 0'), after: msg('state: run\nspeed: 0') } })
    expect(w.get('[data-testid="diff-summary"]').text()).toBe('Text: 1 line added, 1 removed')
    expect(w.get('[data-testid="diff-lines"]').text()).toContain('− state: idle')
    expect(w.get('[data-testid="diff-lines"]').text()).toContain('+ state: run')
  })
})

describe('diff in a topic\'s history', () => {
  afterEach(() => vi.unstubAllGlobals())

  it('each message with an earlier one on its topic can be compared with it', async () => {
    const history = [msg('{"t":3}', 30), msg('{"t":2}', 20), msg('{"t":1,"x":0}', 10)] // newest first, as the API
    vi.stubGlobal('fetch', vi.fn().mockResolvedValue(new Response(JSON.stringify({ messages: history }), { status: 200 })))
    const node = { name: 'line1', path: 'plant/line1', children: new Map(), info: { messages: 3, lastSeen: 30, retained: false, lastValue: '' }, topicCount: 1, total: 3 }
    const w = mount(TopicDetail, { props: { path: 'plant/line1', node: node as never, nowMs: 31_000 }, global: { stubs: { UPlotChart: true } } })
    await flushPromises()
    const buttons = w.findAll('[data-testid="topic-message-diff"]')
    expect(buttons).toHaveLength(2) // the oldest has nothing before it
    await buttons[1].trigger('click')
    expect(w.get('[data-testid="diff-summary"]').text()).toBe('JSON: 2 changes, 0 unchanged')
    expect(w.findAll('[data-testid="diff-change"]').map((r) => r.text())).toEqual(['tchanged12', 'xremoved0'])
  })
})
