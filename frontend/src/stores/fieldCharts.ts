// Charts of numeric JSON fields picked from topics' payloads (several fields from several topics per
// chart). The chart layouts are kept in this browser (localStorage): topic and path names only, never
// payloads. Each series fills from the server's history first, then from live messages.
import { reactive, shallowRef } from 'vue'
import { api, query } from '../lib/api'
import { numberAt, payloadValue } from '../lib/jsonPath'
import type { MqttMessage } from '../types'
import { decoderChoice } from './decoder'

export const CHARTS_KEY = 'mqtt-dashboard:field-charts'
export const MAX_POINTS = 2_000
const HISTORY_LIMIT = 1_000
const MAX_CHARTS = 12
const MAX_SERIES = 8
export const COLORS = ['#2563eb', '#059669', '#d97706', '#dc2626', '#9333ea', '#0d9488', '#db2777', '#4b5563']

export interface FieldSeries {
  topic: string
  /** "" charts the payload itself (a plain number). */
  path: string
}

export interface FieldChart {
  id: string
  title: string
  series: FieldSeries[]
}

function valid(c: unknown): c is FieldChart {
  const chart = c as FieldChart
  return (
    !!chart &&
    typeof chart.id === 'string' &&
    typeof chart.title === 'string' &&
    Array.isArray(chart.series) &&
    chart.series.every((s) => s && typeof s.topic === 'string' && typeof s.path === 'string')
  )
}

function load(): FieldChart[] {
  try {
    const list: unknown = JSON.parse(localStorage.getItem(CHARTS_KEY) ?? '[]')
    return Array.isArray(list) ? list.filter(valid).slice(0, MAX_CHARTS) : []
  } catch {
    return []
  }
}

export const fieldCharts = reactive({ charts: load() as FieldChart[] })
/** Bumped when any series got points (the charts recompute their data from it). */
export const fieldChartsVersion = shallowRef(0)

function save(): void {
  try {
    localStorage.setItem(CHARTS_KEY, JSON.stringify(fieldCharts.charts))
  } catch {
    // storage unavailable: the charts last as long as the page
  }
}

export function seriesKey(s: FieldSeries): string {
  return `${s.topic}\u0000${s.path}`
}

export function seriesLabel(s: FieldSeries): string {
  return s.path ? `${s.topic} · ${s.path}` : s.topic
}

// Points per series: [unix seconds, value], ascending.
const points = new Map<string, [number, number][]>()
const loaded = new Map<string, Promise<void>>()

function tracked(): Map<string, FieldSeries[]> {
  const byTopic = new Map<string, FieldSeries[]>()
  for (const c of fieldCharts.charts)
    for (const s of c.series) {
      const list = byTopic.get(s.topic) ?? []
      if (!list.some((x) => x.path === s.path)) list.push(s)
      byTopic.set(s.topic, list)
    }
  return byTopic
}

function pushPoint(key: string, t: number, v: number): void {
  const list = points.get(key) ?? []
  if (list.length && t <= list[list.length - 1][0]) return // seen already (history and live overlap)
  list.push([t, v])
  if (list.length > MAX_POINTS) list.splice(0, list.length - MAX_POINTS)
  points.set(key, list)
}

/** Live messages (every frame, paused or not): points for the tracked fields of their topics. */
export function applyFieldMessages(list: MqttMessage[]): void {
  if (fieldCharts.charts.length === 0) return
  const byTopic = tracked()
  let changed = false
  for (const m of list) {
    const specs = byTopic.get(m.topic)
    if (!specs) continue
    const value = payloadValue(m, decoderChoice.value)
    for (const s of specs) {
      const v = numberAt(value, s.path)
      if (v !== null && typeof m.timestamp === 'number') {
        pushPoint(seriesKey(s), m.timestamp, v)
        changed = true
      }
    }
  }
  if (changed) fieldChartsVersion.value++
}

/** The topic's history from the server, oldest first, merged before the live points. */
export function loadSeriesHistory(s: FieldSeries): Promise<void> {
  const key = seriesKey(s)
  const pending = loaded.get(key)
  if (pending) return pending
  const job = (async () => {
    const body = await api.get<{ messages?: MqttMessage[] }>(`/api/messages${query({ topic: s.topic, limit: HISTORY_LIMIT })}`)
    const history = (Array.isArray(body?.messages) ? body.messages : []).slice().reverse()
    const fromHistory: [number, number][] = []
    for (const m of history) {
      if (m.topic !== s.topic || typeof m.timestamp !== 'number') continue
      const v = numberAt(payloadValue(m, decoderChoice.value), s.path)
      if (v !== null && (!fromHistory.length || m.timestamp > fromHistory[fromHistory.length - 1][0])) fromHistory.push([m.timestamp, v])
    }
    const last = fromHistory.length ? fromHistory[fromHistory.length - 1][0] : -Infinity
    const live = (points.get(key) ?? []).filter(([t]) => t > last)
    points.set(key, [...fromHistory, ...live].slice(-MAX_POINTS))
    fieldChartsVersion.value++
  })()
  loaded.set(key, job)
  job.catch(() => loaded.delete(key)) // try again next time
  return job
}

/** uPlot data for a chart: the union of its series' times, null where a series has no point. */
export function chartData(chart: FieldChart): [number[], ...(number | null)[][]] {
  const lists = chart.series.map((s) => points.get(seriesKey(s)) ?? [])
  const times = [...new Set(lists.flatMap((l) => l.map(([t]) => t)))].sort((a, b) => a - b)
  const index = new Map(times.map((t, i) => [t, i]))
  const cols = lists.map((l) => {
    const col: (number | null)[] = new Array(times.length).fill(null)
    for (const [t, v] of l) col[index.get(t)!] = v
    return col
  })
  return [times, ...cols]
}

export function pointCount(s: FieldSeries): number {
  return points.get(seriesKey(s))?.length ?? 0
}

/** Add a field to a chart (a new one when `chartId` is absent); returns the chart's id. */
export function addField(s: FieldSeries, chartId?: string): string {
  let chart = fieldCharts.charts.find((c) => c.id === chartId)
  if (!chart) {
    if (fieldCharts.charts.length >= MAX_CHARTS) throw new Error(`At most ${MAX_CHARTS} charts: remove one first.`)
    chart = { id: Math.random().toString(36).slice(2, 10), title: s.path || s.topic, series: [] }
    fieldCharts.charts.push(chart)
  }
  if (!chart.series.some((x) => seriesKey(x) === seriesKey(s))) {
    if (chart.series.length >= MAX_SERIES) throw new Error(`At most ${MAX_SERIES} fields per chart.`)
    chart.series.push({ topic: s.topic, path: s.path })
  }
  save()
  void loadSeriesHistory(s).catch(() => undefined)
  return chart.id
}

export function removeField(chartId: string, s: FieldSeries): void {
  const chart = fieldCharts.charts.find((c) => c.id === chartId)
  if (!chart) return
  chart.series = chart.series.filter((x) => seriesKey(x) !== seriesKey(s))
  if (chart.series.length === 0) fieldCharts.charts = fieldCharts.charts.filter((c) => c.id !== chartId)
  save()
}

export function removeChart(chartId: string): void {
  fieldCharts.charts = fieldCharts.charts.filter((c) => c.id !== chartId)
  save()
}

export function renameChart(chartId: string, title: string): void {
  const chart = fieldCharts.charts.find((c) => c.id === chartId)
  if (!chart) return
  chart.title = title.slice(0, 100)
  save()
}

/** Forget points and reload (tests; a store reset). */
export function resetFieldCharts(charts: FieldChart[] = []): void {
  points.clear()
  loaded.clear()
  fieldCharts.charts = charts
  save()
}
