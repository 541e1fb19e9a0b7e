import { reactive, shallowRef } from 'vue'
import type { BridgeHealth, BrokerStatus, ClientsMessage, StatsData, StatsMessage } from '../types'
import { isNum } from '../lib/format'

export const CHART_WINDOW_SECONDS = 15 * 60

export interface Rates {
  messagesIn: number | null
  messagesOut: number | null
  bytesIn: number | null
  bytesOut: number | null
}

function load1min(data: StatsData, key: string): number | null {
  const v = data.load?.[key]?.['1min']
  // mosquitto's $SYS load figures are per minute.
  return isNum(v) ? v / 60 : null
}

function delta(prev: StatsMessage | null, cur: StatsMessage, key: keyof StatsData): number | null {
  const a = prev?.data?.[key]
  const b = cur.data?.[key]
  const dt = (cur.timestamp ?? 0) - (prev?.timestamp ?? 0)
  if (!isNum(a) || !isNum(b) || !(dt > 0) || b < a) return null
  return (b - a) / dt
}

/**
 * Per-second rates: the bridge's own `rates` when present; otherwise the change of the counters
 * since the previous snapshot; otherwise mosquitto's 1-minute load average.
 */
export function ratesOf(cur: StatsMessage | null, prev: StatsMessage | null = null): Rates {
  const data = cur?.data
  if (!cur || !data) return { messagesIn: null, messagesOut: null, bytesIn: null, bytesOut: null }
  const r = data.rates ?? {}
  const pick = (given: unknown, key: keyof StatsData, loadKey: string): number | null =>
    isNum(given) ? given : (delta(prev, cur, key) ?? load1min(data, loadKey))
  return {
    messagesIn: pick(r.messages_received_per_s, 'messages_received', 'messages_received'),
    messagesOut: pick(r.messages_sent_per_s, 'messages_sent', 'messages_sent'),
    bytesIn: pick(r.bytes_received_per_s, 'bytes_received', 'bytes_received'),
    bytesOut: pick(r.bytes_sent_per_s, 'bytes_sent', 'bytes_sent'),
  }
}

/** Time series for the overview charts, bounded to the last 15 minutes. */
export class RollingSeries {
  t: number[] = []
  cols: (number | null)[][]

  constructor(
    readonly columns: number,
    readonly windowSeconds = CHART_WINDOW_SECONDS,
  ) {
    this.cols = Array.from({ length: columns }, () => [])
  }

  push(t: number, values: (number | null)[]): void {
    const last = this.t.length ? this.t[this.t.length - 1] : -Infinity
    if (t <= last) {
      // The same snapshot again (e.g. on reconnect): replace the last point instead of going back in time.
      if (t === last) for (let c = 0; c < this.columns; c++) this.cols[c][this.t.length - 1] = values[c] ?? null
      return
    }
    this.t.push(t)
    for (let c = 0; c < this.columns; c++) this.cols[c].push(values[c] ?? null)
    this.prune(t)
  }

  prune(now: number): void {
    const cutoff = now - this.windowSeconds
    let i = 0
    while (i < this.t.length && this.t[i] < cutoff) i++
    if (i > 0) {
      this.t.splice(0, i)
      for (const col of this.cols) col.splice(0, i)
    }
  }

  /** A copy in uPlot's AlignedData shape: [x, ...columns]. */
  data(): [number[], ...(number | null)[][]] {
    return [this.t.slice(), ...this.cols.map((c) => c.slice())]
  }
}

export function createBrokerStore() {
  const state = reactive({
    stats: null as StatsMessage | null,
    rates: ratesOf(null) as Rates,
    status: null as BrokerStatus | null,
    bridge: null as BridgeHealth | null,
    clients: null as ClientsMessage | null,
    worker: null as number | null,
  })
  let rateSeries = new RollingSeries(2) // messages in, out
  let clientSeries = new RollingSeries(1) // clients connected
  const rateData = shallowRef(rateSeries.data())
  const clientData = shallowRef(clientSeries.data())
  let prev: StatsMessage | null = null

  function applyStats(msg: StatsMessage | null | undefined): void {
    if (!msg || typeof msg !== 'object' || !msg.data || typeof msg.data !== 'object') return
    const stamped: StatsMessage = { ...msg, timestamp: isNum(msg.timestamp) ? msg.timestamp : Date.now() / 1000 }
    const rates = ratesOf(stamped, prev)
    prev = stamped
    state.stats = stamped
    state.rates = rates
    const t = stamped.timestamp as number
    rateSeries.push(t, [rates.messagesIn, rates.messagesOut])
    const cc = stamped.data?.clients_connected
    clientSeries.push(t, [isNum(cc) ? cc : null])
    rateData.value = rateSeries.data()
    clientData.value = clientSeries.data()
  }

  /**
   * Start the charts from the bridge's recorded history (oldest first) over a window of `seconds`;
   * live points that are newer than the history's last one are kept after it.
   */
  function loadHistory(points: StatsMessage[], seconds: number): void {
    const rates = new RollingSeries(2, seconds)
    const clients = new RollingSeries(1, seconds)
    let before: StatsMessage | null = null
    for (const point of Array.isArray(points) ? points : []) {
      if (!point || !isNum(point.timestamp) || !point.data || typeof point.data !== 'object') continue
      const r = ratesOf(point, before)
      before = point
      rates.push(point.timestamp, [r.messagesIn, r.messagesOut])
      const cc = point.data.clients_connected
      clients.push(point.timestamp, [isNum(cc) ? cc : null])
    }
    const last = rates.t.length ? rates.t[rates.t.length - 1] : -Infinity
    rateSeries.t.forEach((t, i) => {
      if (t > last) rates.push(t, [rateSeries.cols[0][i], rateSeries.cols[1][i]])
    })
    clientSeries.t.forEach((t, i) => {
      if (t > last) clients.push(t, [clientSeries.cols[0][i]])
    })
    rates.prune(Date.now() / 1000)
    clients.prune(Date.now() / 1000)
    rateSeries = rates
    clientSeries = clients
    rateData.value = rateSeries.data()
    clientData.value = clientSeries.data()
  }

  function applyStatus(msg: BrokerStatus | null | undefined): void {
    if (msg && typeof msg === 'object') state.status = msg
  }

  function applyBridge(msg: BridgeHealth | null | undefined): void {
    if (msg && typeof msg === 'object') state.bridge = msg
  }

  function applyClients(msg: ClientsMessage | null | undefined): void {
    if (msg && typeof msg === 'object') state.clients = msg
  }

  return { state, rateData, clientData, applyStats, loadHistory, applyStatus, applyBridge, applyClients }
}

export type BrokerStore = ReturnType<typeof createBrokerStore>
