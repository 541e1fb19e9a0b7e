import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import BridgeMembers from '../src/components/BridgeMembers.vue'

const nowMs = 1_700_000_100_000

describe('BridgeMembers', () => {
  it('marks the leader and shows what a dead member lost', () => {
    const w = mount(BridgeMembers, {
      props: {
        nowMs,
        group: {
          name: 'g',
          leader: 'b',
          members: [
            { member: 'b', leader: true, alive: true, connected: true, pid: 2, host: 'h', counters: { forwarded: 10 } },
            { member: 'a', leader: false, alive: false, died_at: 1_700_000_090, estimated_lost: 37 },
          ],
        },
      },
    })
    expect(w.get('[data-testid="member-b"]').find('[data-testid="member-leader"]').exists()).toBe(true)
    expect(w.get('[data-testid="member-a"]').find('[data-testid="member-leader"]').exists()).toBe(false)
    expect(w.get('[data-testid="member-a"] [data-testid="member-dead"]').text()).toMatch(/about 37 QoS 0 messages lost/)
  })

  it('renders a member id as text, never as HTML', () => {
    const w = mount(BridgeMembers, {
      props: { nowMs, group: { name: '<b>g</b>', members: [{ member: '<img src=x onerror=alert(1)>' }] } },
    })
    expect(w.find('img').exists()).toBe(false)
    expect(w.text()).toContain('<img src=x onerror=alert(1)>')
  })
})
