import { describe, expect, it } from 'vitest'
import { createBrokerStore, ratesOf, RollingSeries } from '../src/stores/broker'

describe('broker stats', () => {
  it('uses the bridge rates when given', () => {
    const r = ratesOf({ timestamp: 10, data: { rates: { messages_received_per_s: 12.5, messages_sent_per_s: 3 } } })
    expect(r.messagesIn).toBe(12.5)
    expect(r.messagesOut).toBe(3)
    expect(r.bytesIn).toBeNull()
  })

  it('falls back to counter deltas, then to the 1-minute load', () => {
    const prev = { timestamp: 100, data: { messages_received: 1000 } }
    const cur = { timestamp: 105, data: { messages_received: 1500, load: { messages_sent: { '1min': 600 } } } }
    const r = ratesOf(cur, prev)
    expect(r.messagesIn).toBe(100)
    expect(r.messagesOut).toBe(10) // 600 per minute
  })

  it('survives stats with missing or null fields', () => {
    const store = createBrokerStore()
    store.applyStats({ type: 'stats_update', timestamp: 1, data: {} })
    store.applyStats({ type: 'stats_update', timestamp: 2, data: { load: null, rates: null, clients_connected: null } })
    store.applyStats(null)
    store.applyStats({ type: 'stats_update' })
    expect(store.state.stats?.timestamp).toBe(2)
    expect(store.clientData.value[0]).toEqual([1, 2])
  })

  it('charts keep only the last 15 minutes', () => {
    const s = new RollingSeries(1)
    for (let t = 0; t <= 3600; t += 5) s.push(t, [t])
    const [x] = s.data()
    expect(x[0]).toBe(2700)
    expect(x[x.length - 1]).toBe(3600)
    expect(x.length).toBe(181)
  })

  it('the same snapshot twice (reconnect) does not add a point', () => {
    const store = createBrokerStore()
    const msg = { timestamp: 50, data: { clients_connected: 3 } }
    store.applyStats(msg)
    store.applyStats(msg)
    expect(store.clientData.value[0]).toEqual([50])
  })
})
