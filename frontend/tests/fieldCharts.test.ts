import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { numberAt, numericPaths, parsePath, payloadValue } from '../src/lib/jsonPath'
import {
  CHARTS_KEY,
  addField,
  applyFieldMessages,
  chartData,
  fieldCharts,
  loadSeriesHistory,
  resetFieldCharts,
} from '../src/stores/fieldCharts'
import FieldPicker from '../src/components/FieldPicker.vue'
import type { MqttMessage } from '../src/types'

function msg(topic: string, payload: unknown, timestamp: number): MqttMessage {
  return { topic, payload: typeof payload === 'string' ? payload : JSON.stringify(payload), encoding: 'utf-8', timestamp }
}

function historyServer(byTopic: Record<string, MqttMessage[]>) {
  const fetchMock = vi.fn(async (path: string) => {
    const topic = new URL(path, 'http://x').searchParams.get('topic') ?? ''
    // newest first, as GET /api/messages answers
    return new Response(JSON.stringify({ messages: (byTopic[topic] ?? []).slice().reverse(), next_before: null }), { status: 200 })
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}

describe('paths into JSON payloads', () => {
  const doc = { sensors: [{ temp: 21.5, id: 'a' }, { temp: 19 }], 'odd key': { 'x.y': 3 }, ok: true, n: null }

  it('lists every numeric field by path, arrays and odd keys included', () => {
    expect(numericPaths(doc)).toEqual(['sensors[0].temp', 'sensors[1].temp', '["odd key"]["x.y"]'])
    expect(numericPaths(42)).toEqual([''])
  })

  it('reads a number at a path, null when there is none', () => {
    expect(numberAt(doc, 'sensors[0].temp')).toBe(21.5)
    expect(numberAt(doc, 'sensors[1].temp')).toBe(19)
    expect(numberAt(doc, '["odd key"]["x.y"]')).toBe(3)
    expect(numberAt(doc, 'sensors[0].id')).toBeNull()
    expect(numberAt(doc, 'sensors[5].temp')).toBeNull()
    expect(numberAt(doc, 'sensors.0.temp')).toBeNull() // an array is indexed with [0]
    expect(numberAt(doc, 'ok')).toBeNull()
    expect(numberAt(7, '')).toBe(7)
    expect(numberAt({ toString: 1 }, 'constructor')).toBeNull()
  })

  it('refuses what is not a path', () => {
    expect(parsePath('a..b')).toBeNull()
    expect(parsePath('a[x]')).toBeNull()
    expect(parsePath('a[0')).toBeNull()
    expect(parsePath('a.b[2].c')).toEqual(['a', 'b', 2, 'c'])
  })

  it('takes plain numbers and JSON; truncated payloads give nothing', () => {
    expect(payloadValue(msg('t', '12.5', 1), 'auto')).toBe(12.5)
    expect(payloadValue(msg('t', { a: 1 }, 1), 'auto')).toEqual({ a: 1 })
    expect(payloadValue({ ...msg('t', { a: 1 }, 1), truncated: true }, 'auto')).toBeUndefined()
  })
})

describe('field charts', () => {
  beforeEach(() => {
    localStorage.clear()
    resetFieldCharts()
  })
  afterEach(() => vi.unstubAllGlobals())

  it('fill from history first, then live, with several fields from several topics in one chart', async () => {
    historyServer({
      'plant/a': [msg('plant/a', { sensors: [{ temp: 20 }] }, 100), msg('plant/a', { sensors: [{ temp: 21 }] }, 110)],
      'plant/b': [msg('plant/b', { rpm: 900 }, 105)],
    })
    const id = addField({ topic: 'plant/a', path: 'sensors[0].temp' })
    addField({ topic: 'plant/b', path: 'rpm' }, id)
    await flushPromises()
    const chart = fieldCharts.charts[0]
    expect(chartData(chart)).toEqual([
      [100, 105, 110],
      [20, null, 21],
      [null, 900, null],
    ])
    applyFieldMessages([msg('plant/a', { sensors: [{ temp: 22 }] }, 120), msg('plant/b', { rpm: 950 }, 121), msg('plant/c', { rpm: 1 }, 122)])
    expect(chartData(chart)).toEqual([
      [100, 105, 110, 120, 121],
      [20, null, 21, 22, null],
      [null, 900, null, null, 950],
    ])
  })

  it('live points that came before the history are kept after it, without doubles', async () => {
    historyServer({ 'plant/a': [msg('plant/a', '1', 100), msg('plant/a', '2', 110)] })
    fieldCharts.charts = [{ id: 'c1', title: 't', series: [{ topic: 'plant/a', path: '' }] }]
    applyFieldMessages([msg('plant/a', '2', 110), msg('plant/a', '3', 120)])
    await loadSeriesHistory({ topic: 'plant/a', path: '' })
    expect(chartData(fieldCharts.charts[0])).toEqual([[100, 110, 120], [1, 2, 3]])
  })

  it('are kept per browser: names only, never payloads', () => {
    historyServer({})
    addField({ topic: 'plant/a', path: 'sensors[0].temp' })
    const stored = JSON.parse(localStorage.getItem(CHARTS_KEY)!)
    expect(stored).toEqual([{ id: expect.any(String), title: 'sensors[0].temp', series: [{ topic: 'plant/a', path: 'sensors[0].temp' }] }])
  })

  it('the topic detail offers the numeric paths of the payloads and adds one to a chart', async () => {
    historyServer({})
    const recent = [msg('plant/a', { sensors: [{ temp: 21 }], state: 'run', load: 0.5 }, 110)]
    const w = mount(FieldPicker, { props: { topic: 'plant/a', messages: recent } })
    expect(w.findAll('datalist option').map((o) => o.attributes('value'))).toEqual(['sensors[0].temp', 'load'])
    await w.get('[data-testid="field-path"]').setValue('load')
    await w.get('[data-testid="field-picker"]').trigger('submit')
    expect(fieldCharts.charts.map((c) => c.series)).toEqual([[{ topic: 'plant/a', path: 'load' }]])
    expect(w.get('[data-testid="field-added"]').text()).toContain('Added load to a chart')
    await w.get('[data-testid="field-path"]').setValue('a..b')
    await w.get('[data-testid="field-picker"]').trigger('submit')
    expect(w.get('[data-testid="field-error"]').text()).toContain('is not a path')
  })
})
