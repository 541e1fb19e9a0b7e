import { reactive } from 'vue'
import { api, ApiError } from '../lib/api'

/** One row of GET /api/brokers (docs/dashboard-api.md). */
export interface BrokerRow {
  name: string
  online: boolean
  connected: boolean | null
  broker: string | null
  expected: boolean
  last_seen: number | null
  clients_connected: number | null
  messages_per_s: number | null
  forwarded: number | null
  /** Its heartbeat is in Redis but cannot be read: why. */
  problem?: string | null
  dropped_per_s?: number | null
  dropped_last_minute?: number | null
}

/** Every broker this dashboard knows (registered bridges and DASHBOARD_BROKERS), refreshed often. */
export const brokers = reactive({
  list: [] as BrokerRow[],
  loaded: false,
  error: '',
})

const REFRESH_MS = 5000
let timer: ReturnType<typeof setInterval> | null = null

export async function loadBrokers(): Promise<void> {
  try {
    const body = await api.get<{ brokers?: BrokerRow[] }>('/api/brokers')
    brokers.list = Array.isArray(body?.brokers) ? body.brokers.filter((b) => b && typeof b.name === 'string') : []
    brokers.error = ''
  } catch (e) {
    brokers.error = e instanceof ApiError ? e.message : String(e)
  } finally {
    brokers.loaded = true
  }
}

export function startBrokerList(): void {
  if (timer) return
  void loadBrokers()
  timer = setInterval(() => void loadBrokers(), REFRESH_MS)
}

export function stopBrokerList(): void {
  if (timer) clearInterval(timer)
  timer = null
}
