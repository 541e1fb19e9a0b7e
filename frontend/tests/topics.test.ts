import { describe, expect, it } from 'vitest'
import { buildTopicTree, findNode, flattenTree, type TopicInfo } from '../src/lib/topicTree'
import { createTopicStore } from '../src/stores/topics'

function info(topic: string, messages = 1, lastValue: string | null = null): TopicInfo {
  return { topic, messages, lastSeen: 1, retained: false, lastValue }
}

describe('topic tree', () => {
  const topics = [
    info('home/kitchen/temp', 10, '21.5'),
    info('home/kitchen/humidity', 5, '40'),
    info('home/hall/temp', 3, '19'),
    info('home', 2, 'root value'),
    info('office/desk10', 1),
    info('office/desk2', 1),
  ]

  it('nests levels, sums counts, and keeps last values on topics', () => {
    const root = buildTopicTree(topics)
    expect(root.children.map((c) => c.name)).toEqual(['home', 'office'])
    const home = findNode(root, 'home')!
    expect(home.info?.lastValue).toBe('root value') // a topic can also be a parent
    expect(home.total).toBe(20)
    expect(home.topicCount).toBe(4)
    expect(findNode(root, 'home/kitchen')!.total).toBe(15)
    expect(findNode(root, 'home/kitchen')!.info).toBeNull()
    expect(findNode(root, 'home/kitchen/temp')!.info?.lastValue).toBe('21.5')
    // natural sort: desk2 before desk10
    expect(findNode(root, 'office')!.children.map((c) => c.name)).toEqual(['desk2', 'desk10'])
  })

  it('shows only expanded branches', () => {
    const root = buildTopicTree(topics)
    expect(flattenTree(root, new Set()).map((r) => r.node.path)).toEqual(['home', 'office'])
    expect(flattenTree(root, new Set(['home'])).map((r) => r.node.path)).toEqual([
      'home',
      'home/hall',
      'home/kitchen',
      'office',
    ])
  })

  it('search keeps matching topics with their parents, all expanded', () => {
    const root = buildTopicTree(topics, 'TEMP')
    const rows = flattenTree(root, new Set(), true).map((r) => r.node.path)
    expect(rows).toEqual(['home', 'home/hall', 'home/hall/temp', 'home/kitchen', 'home/kitchen/temp'])
  })

  it('handles empty levels ("/a", "a//b")', () => {
    const root = buildTopicTree([info('/a'), info('a//b')])
    expect(findNode(root, '')!.children[0].path).toBe('/a')
    expect(findNode(root, 'a//b')!.info).not.toBeNull()
  })
})

describe('topic store', () => {
  const immediate = (fn: () => void) => {
    fn()
    return 0
  }

  it('merges the topic index with live messages', () => {
    const store = createTopicStore({ setTimer: immediate })
    store.applyIndex([{ topic: 'a/b', messages: 10, last_seen: 100, retained: true, last_payload_preview: 'old' }])
    store.applyMessages([{ topic: 'a/b', payload: 'new', timestamp: 200 }, { topic: 'a/c', payload: '{"x":1}', timestamp: 201 }])
    expect(store.get('a/b')).toMatchObject({ messages: 11, lastValue: 'new', retained: true, lastSeen: 200 })
    expect(store.get('a/c')).toMatchObject({ messages: 1, lastValue: '{"x":1}' })
    // A later index with the authoritative count; an older preview does not replace a newer live value.
    store.applyIndex([{ topic: 'a/b', messages: 50, last_seen: 150, retained: true, last_payload_preview: 'older' }])
    expect(store.get('a/b')).toMatchObject({ messages: 50, lastValue: 'new' })
    expect(store.state.count).toBe(2)
  })

  it('is bounded', () => {
    const store = createTopicStore({ setTimer: immediate, maxTopics: 3 })
    store.applyMessages(Array.from({ length: 10 }, (_, i) => ({ topic: `t/${i}`, payload: '', timestamp: i })))
    expect(store.state.count).toBe(3)
  })

  it('rebuilds the tree at most once per interval', () => {
    const timers: (() => void)[] = []
    const store = createTopicStore({ setTimer: (fn) => timers.push(fn) })
    for (let i = 0; i < 100; i++) store.applyMessages([{ topic: `t/${i}`, payload: '1', timestamp: i }])
    expect(timers).toHaveLength(1)
    expect(store.state.version).toBe(0)
    timers[0]()
    expect(store.state.version).toBe(1)
    expect(store.state.count).toBe(100)
  })
})
