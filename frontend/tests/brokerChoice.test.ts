import { describe, expect, it } from 'vitest'
import { brokerFromSearch, brokerPath, urlForBroker } from '../src/lib/brokerChoice'

describe('broker choice', () => {
  it('reads the broker from the address, the unnamed one when absent or malformed', () => {
    expect(brokerFromSearch('?broker=plant-1')).toBe('plant-1')
    expect(brokerFromSearch('')).toBe('default')
    expect(brokerFromSearch('?broker=Not%20Valid')).toBe('default')
    expect(brokerFromSearch('?broker=' + 'x'.repeat(33))).toBe('default')
  })

  it('sends a named broker’s REST calls to its own routes, and dashboard-wide ones as they are', () => {
    expect(brokerPath('/api/broker/status', 'a')).toBe('/api/brokers/a/broker/status')
    expect(brokerPath('/api/publish/templates/x/run', 'a')).toBe('/api/brokers/a/publish/templates/x/run')
    expect(brokerPath('/api/messages?topic=x', 'a')).toBe('/api/brokers/a/messages?topic=x')
    expect(brokerPath('/api/session', 'a')).toBe('/api/session')
    expect(brokerPath('/api/brokers', 'a')).toBe('/api/brokers')
    expect(brokerPath('/api/broker/status', 'default')).toBe('/api/broker/status')
  })

  it('builds the address of another broker, keeping the view', () => {
    const loc = { pathname: '/', search: '?broker=a&login=failed', hash: '#/messages' }
    expect(urlForBroker('b', loc)).toBe('/?broker=b#/messages')
    expect(urlForBroker('default', loc)).toBe('/#/messages')
  })
})
