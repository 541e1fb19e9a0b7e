import { afterEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import MessageProperties from '../src/components/MessageProperties.vue'
import { brokerConnection } from '../src/stores/brokerConnection'

afterEach(() => {
  brokerConnection.value = null
})

describe('MessageProperties', () => {
  it('shows every property as text, user properties in order with repeats, never as markup', () => {
    brokerConnection.value = { protocol: '5' }
    const w = mount(MessageProperties, {
      props: {
        properties: {
          content_type: '<b>bold</b>',
          payload_format_indicator: 1,
          user_properties: [
            ['unit', 'C'],
            ['unit', '<img src=x onerror=alert(1)>'],
          ],
        },
      },
    })
    const pairs = w.findAll('[data-testid="message-user-property"] dd').map((p) => p.text())
    expect(pairs).toEqual(['unit = C', 'unit = <img src=x onerror=alert(1)>'])
    expect(w.text()).toContain('<b>bold</b>')
    expect(w.text()).toContain('1 (UTF-8 text)')
    expect(w.find('img').exists()).toBe(false)
    expect(w.find('b').exists()).toBe(false)
  })

  it('says why there are none when the bridge runs MQTT 3.1.1', () => {
    brokerConnection.value = { protocol: '3.1.1' }
    const w = mount(MessageProperties, { props: { properties: undefined } })
    expect(w.get('[data-testid="message-properties-none"]').text()).toContain('MQTT 3.1.1')
  })

  it('says nothing for a message without properties on MQTT 5', () => {
    brokerConnection.value = { protocol: '5' }
    const w = mount(MessageProperties, { props: { properties: undefined } })
    expect(w.text()).toBe('')
  })
})
