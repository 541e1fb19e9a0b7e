import { afterEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import ClientsView from '../src/views/ClientsView.vue'
import { broker } from '../src/stores'
import { protocolName } from '../src/lib/format'
import type { ClientInfo } from '../src/types'

const BASE = { address: '127.0.0.1:40001', username: null, keepalive: 60, connected_at: 1 }

function show(clients: ClientInfo[]) {
  broker.applyClients({ type: 'clients_update', timestamp: 2, clients })
  return mount(ClientsView, { props: { nowMs: 3000 } })
}

describe('ClientsView', () => {
  afterEach(() => broker.applyClients({ type: 'clients_update', timestamp: 3, clients: [] }))

  it('names protocols as people do, whichever mosquitto logged them', () => {
    expect(['p1', 'p2', 'p3', 'p4', 'p5', 'MQTT 5.0', 'MQTT 3.1.1', null].map(protocolName)).toEqual([
      'MQTT 3.1',
      'MQTT 3.1.1',
      'MQTT 3.1',
      'MQTT 3.1.1',
      'MQTT 5',
      'MQTT 5',
      'MQTT 3.1.1',
      '—',
    ])
    const w = show([{ ...BASE, client_id: 'old-bridge-list', protocol: 'p4' }])
    expect(w.get('[data-testid="client-protocol"]').text()).toBe('MQTT 3.1.1')
  })

  it('marks another broker\'s bridge', () => {
    const w = show([
      { ...BASE, client_id: 'edge.to-main', protocol: 'MQTT 3.1.1', bridge: true },
      { ...BASE, client_id: 'sensor', protocol: 'MQTT 5', bridge: false },
    ])
    expect(w.findAll('[data-testid="client-bridge"]').map((b) => b.element.closest('tr')?.textContent)).toHaveLength(1)
    expect(w.get('[data-testid="client-bridge"]').element.closest('tr')?.textContent).toContain('edge.to-main')
  })

  it('shows what the broker confirms only when it can confirm anything', () => {
    const unknown = show([{ ...BASE, client_id: 'a', protocol: 'MQTT 5', broker_confirmed: null }])
    expect(unknown.find('[data-testid="client-confirmed"]').exists()).toBe(false)

    const w = show([
      { ...BASE, client_id: 'a', protocol: 'MQTT 5', username: 'u', broker_confirmed: true },
      { ...BASE, client_id: 'b', protocol: 'MQTT 5', username: 'u', broker_confirmed: false },
      { ...BASE, client_id: 'c', protocol: 'MQTT 5', broker_confirmed: null },
    ])
    const byId = Object.fromEntries(
      w.findAll('[data-testid="client-row"]').map((row) => [
        row.get('[data-testid="client-id"]').text(),
        row.get('[data-testid="client-confirmed"]').text(),
      ]),
    )
    expect(byId).toEqual({ a: 'yes', b: 'no', c: '—' })
    expect(w.get('[data-testid="clients-note"]').text()).toContain('1 not confirmed')
  })
})
