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
})
