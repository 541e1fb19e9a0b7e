import { afterEach, describe, expect, it, vi } from 'vitest'
import { createBrokerStore } from '../src/stores/broker'
import { broker } from '../src/stores'
import { loadStatsHistory, statsHistory } from '../src/stores/statsHistory'

function points(now: number, count: number, every: number) {
  return Array.from({ length: count }, (_, i) => ({
    timestamp: now - (count - 1 - i) * every,
    data: { clients_connected: 2 + (i % 3), messages_received: 100 * i, rates: { messages_sent_per_s: 4 } },
  }))
}

describe('stats history on load', () => {
  afterEach(() => vi.unstubAllGlobals())

  it('fills the charts from history, rates from successive counters', () => {
    const store = createBrokerStore()
    const now = Date.now() / 1000
    store.loadHistory(points(now, 180, 5), 900)
    const [x, inRate, outRate] = store.rateData.value
    expect(x.length).toBe(180)
    expect(inRate[0]).toBeNull() // no earlier point to take a difference from
    expect(inRate[1]).toBeCloseTo(20) // 100 messages in 5 s
    expect(outRate[5]).toBe(4) // the bridge's own rate wins
    expect(store.clientData.value[1].slice(0, 3)).toEqual([2, 3, 4])
  })

  it('keeps live points newer than the history and drops ones older than the window', () => {
    const store = createBrokerStore()
    const now = Date.now() / 1000
    store.applyStats({ timestamp: now - 2000, data: { clients_connected: 9 } }) // outside 15 min
    store.applyStats({ timestamp: now + 1, data: { clients_connected: 7 } }) // newer than history
    store.loadHistory(points(now, 10, 5), 900)
    const [x, clients] = store.clientData.value
    expect(x.length).toBe(11)
    expect(x[x.length - 1]).toBe(now + 1)
    expect(clients[clients.length - 1]).toBe(7)
    expect(clients).not.toContain(9)
  })

  it('skips damaged points', () => {
    const store = createBrokerStore()
    const bad = [null, { timestamp: 'x' }, { timestamp: 5 }, { timestamp: Date.now() / 1000, data: { clients_connected: 1 } }]
    store.loadHistory(bad as never, 900)
    expect(store.clientData.value[1]).toEqual([1])
  })

  it('asks the server for the chosen range and keeps a 24-hour window', async () => {
    const now = Date.now() / 1000
    const fetchMock = vi.fn().mockResolvedValue(
      new Response(JSON.stringify({ range: '24h', seconds: 86400, points: points(now, 1440, 60) }), { status: 200 }),
    )
    vi.stubGlobal('fetch', fetchMock)
    await loadStatsHistory('24h')
    expect(fetchMock.mock.calls[0][0]).toBe('/api/broker/stats/history?range=24h')
    expect(statsHistory.range).toBe('24h')
    expect(broker.clientData.value[0].length).toBe(1440)
    expect(statsHistory.error).toBeNull()
  })

  it('says why when the history cannot be read', async () => {
    vi.stubGlobal('fetch', vi.fn().mockResolvedValue(new Response(JSON.stringify({ error: 'Redis down' }), { status: 503 })))
    await loadStatsHistory('1h')
    expect(statsHistory.error).toBe('Redis down')
    expect(statsHistory.loading).toBe(false)
  })
})
