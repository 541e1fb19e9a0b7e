import { describe, expect, it } from 'vitest'
import { topicMatches, validateFilter, validatePublishTopic } from '../src/lib/mqttMatch'

describe('topicMatches', () => {
  it.each([
    ['sensors/+/temp', 'sensors/kitchen/temp', true],
    ['sensors/+/temp', 'sensors/kitchen/humidity', false],
    ['sensors/+/temp', 'sensors/a/b/temp', false],
    ['sensors/#', 'sensors', true],
    ['sensors/#', 'sensors/a/b/c', true],
    ['sensors/#', 'sensorsX/a', false],
    ['#', 'anything/at/all', true],
    ['+', 'one', true],
    ['+', 'one/two', false],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a/+', 'a/', true],
    ['', 'whatever', true],
  ])('%s vs %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected)
  })

  it('filters starting with a wildcard do not match $ topics', () => {
    expect(topicMatches('#', '$SYS/broker/uptime')).toBe(false)
    expect(topicMatches('+/broker/uptime', '$SYS/broker/uptime')).toBe(false)
    expect(topicMatches('$SYS/#', '$SYS/broker/uptime')).toBe(true)
    expect(topicMatches('$SYS/+/uptime', '$SYS/broker/uptime')).toBe(true)
  })
})

describe('validateFilter', () => {
  it('accepts valid filters', () => {
    for (const f of ['', '#', '+', 'a/+/b', 'a/#', '$SYS/#', '/']) expect(validateFilter(f)).toBeNull()
  })
  it('explains invalid ones', () => {
    expect(validateFilter('a/#/b')).toMatch(/last level/)
    expect(validateFilter('a#')).toMatch(/whole level/)
    expect(validateFilter('a/b+')).toMatch(/whole level/)
  })
})

describe('validatePublishTopic', () => {
  it('rejects wildcards and empty topics', () => {
    expect(validatePublishTopic('')).toMatch(/Enter a topic/)
    expect(validatePublishTopic('a/+')).toMatch(/wildcards/)
    expect(validatePublishTopic('a/#')).toMatch(/wildcards/)
    expect(validatePublishTopic('devices/lamp/set')).toBeNull()
  })
})
