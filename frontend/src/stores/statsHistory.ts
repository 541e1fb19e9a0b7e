// The overview charts' time range and the history that fills them on load
// (GET /api/broker/stats/history, docs/dashboard-api.md).
import { reactive } from 'vue'
import { api } from '../lib/api'
import type { StatsMessage } from '../types'
import { broker } from '.'

export const STATS_RANGES = [
  { id: '15m', label: '15 min', seconds: 15 * 60, text: 'last 15 minutes' },
  { id: '1h', label: '1 h', seconds: 60 * 60, text: 'last hour' },
  { id: '24h', label: '24 h', seconds: 24 * 60 * 60, text: 'last 24 hours' },
] as const

export type StatsRangeId = (typeof STATS_RANGES)[number]['id']

export interface StatsHistoryBody {
  range?: string
  seconds?: number
  points?: StatsMessage[]
}

export const statsHistory = reactive({
  range: '15m' as StatsRangeId,
  loading: false,
  error: null as string | null,
})

export function rangeOf(id: StatsRangeId) {
  return STATS_RANGES.find((r) => r.id === id) ?? STATS_RANGES[0]
}

let requestNo = 0

/** Fetch the range's history and start the charts from it; the newest request wins. */
export async function loadStatsHistory(id: StatsRangeId = statsHistory.range): Promise<void> {
  const range = rangeOf(id)
  statsHistory.range = range.id
  const mine = ++requestNo
  statsHistory.loading = true
  try {
    const body = await api.get<StatsHistoryBody>(`/api/broker/stats/history?range=${range.id}`)
    if (mine !== requestNo) return
    broker.loadHistory(body?.points ?? [], range.seconds)
    statsHistory.error = null
  } catch (e) {
    if (mine !== requestNo) return
    // The charts still fill live; say why they started empty.
    broker.loadHistory([], range.seconds)
    statsHistory.error = e instanceof Error ? e.message : String(e)
  } finally {
    if (mine === requestNo) statsHistory.loading = false
  }
}
