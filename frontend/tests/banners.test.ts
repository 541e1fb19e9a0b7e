import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import Banners from '../src/components/Banners.vue'

const base = {
  authOff: false,
  socketState: 'connected' as const,
  socketAttempt: 0,
  socketError: '',
  status: { connected: true, broker: 'localhost:1883' },
  bridge: { online: true, heartbeat_age: 1 },
  nowMs: 1_700_000_100_000,
}

describe('Banners', () => {
  it('shows nothing when all is well', () => {
    const w = mount(Banners, { props: base })
    expect(w.findAll('.banner')).toHaveLength(0)
  })

  it('warns when authentication is off', () => {
    const w = mount(Banners, { props: { ...base, authOff: true } })
    expect(w.get('[data-testid="banner-auth-off"]').text()).toContain('Authentication is off')
  })

  it('shows the broker disconnect reason', () => {
    const w = mount(Banners, {
      props: {
        ...base,
        status: { connected: false, broker: 'mqtt.local:1883', reason: 'connection refused', since: 1_700_000_000 },
      },
    })
    const t = w.get('[data-testid="banner-broker"]').text()
    expect(t).toContain('mqtt.local:1883')
    expect(t).toContain('connection refused')
    expect(t).toContain('1m ago')
  })

  it('shows the bridge offline', () => {
    const w = mount(Banners, { props: { ...base, bridge: { online: false, heartbeat_age: 42.4 } } })
    expect(w.get('[data-testid="banner-bridge"]').text()).toMatch(/bridge is offline.*42 s ago/)
  })

  it('shows the reconnecting socket with the attempt number', () => {
    const w = mount(Banners, { props: { ...base, socketState: 'reconnecting', socketAttempt: 3, socketError: 'transport close' } })
    const t = w.get('[data-testid="banner-socket"]').text()
    expect(t).toContain('reconnecting (attempt 3)')
    expect(t).toContain('transport close')
  })

  it('shows a bridge whose heartbeat cannot be read, with the reason', () => {
    const w = mount(Banners, {
      props: { ...base, bridge: { online: false, heartbeat_age: null, problem: 'the heartbeat is not a JSON object' } },
    })
    const t = w.get('[data-testid="banner-bridge"]').text()
    expect(t).toContain('state is unknown')
    expect(t).toContain('the heartbeat is not a JSON object')
  })

  it('shows loss at the broker with the rate and what to change', () => {
    const stats = {
      data: { publish_dropped: 138_414, publish_dropped_recent: 12_345, rates: { publish_dropped_per_s: 2306.5 } },
    }
    const w = mount(Banners, { props: { ...base, stats } })
    const t = w.get('[data-testid="banner-loss"]').text()
    expect(t).toContain('The broker is dropping messages: 12,345 messages in the last minute')
    expect(t).toContain('(2,307/s now)')
    expect(t).toContain('max_queued_messages')
    expect(t).toContain('bridge group')
  })

  it('says nothing of drops long past', () => {
    const stats = { data: { publish_dropped: 138_414, publish_dropped_recent: 0, rates: { publish_dropped_per_s: 0 } } }
    const w = mount(Banners, { props: { ...base, stats } })
    expect(w.find('[data-testid="banner-loss"]').exists()).toBe(false)
  })
})
