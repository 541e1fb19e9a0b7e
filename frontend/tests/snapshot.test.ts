import { describe, expect, it } from 'vitest'
import { applySnapshot, connection } from '../src/stores/live'
import { broker, messages, topics } from '../src/stores'
import { session } from '../src/stores/session'

describe('snapshot on (re)connect', () => {
  const snap = {
    worker: 4242,
    auth: 'off' as const,
    status: { type: 'status_change', connected: false, broker: 'broker:1883', reason: 'connection refused' },
    stats: { type: 'stats_update', timestamp: 100, data: { clients_connected: 4, version: '2.0.18' } },
    clients: { type: 'clients_update', clients: [{ client_id: 'dev-1' }] },
    topics: { type: 'topics_update', timestamp: 99, topics: [{ topic: 'a/b', messages: 7, last_seen: 98, retained: false, last_payload_preview: '1' }] },
    bridge: { online: false, heartbeat_age: 30 },
    messages: [
      { topic: 'a/b', payload: '1', timestamp: 97 },
      { topic: 'a/b', payload: '2', timestamp: 98 },
    ],
  }

  it('fills every store, and a second snapshot does not duplicate anything', () => {
    applySnapshot(snap)
    applySnapshot(snap)
    expect(connection.worker).toBe(4242)
    expect(session.auth).toBe('off')
    expect(broker.state.status?.reason).toBe('connection refused')
    expect(broker.state.stats?.data?.version).toBe('2.0.18')
    expect(broker.state.clients?.clients?.[0].client_id).toBe('dev-1')
    expect(broker.state.bridge?.online).toBe(false)
    expect(messages.visible.value.map((s) => s.msg.payload)).toEqual(['2', '1'])
    expect(topics.get('a/b')?.messages).toBeGreaterThanOrEqual(7)
    expect(broker.clientData.value[0]).toEqual([100])
  })

  it('copes with an empty snapshot', () => {
    expect(() => applySnapshot({})).not.toThrow()
    expect(() => applySnapshot(null)).not.toThrow()
  })
})
