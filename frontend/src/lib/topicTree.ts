/** What the browser knows about one topic: the server's topic index merged with live messages. */
export interface TopicInfo {
  topic: string
  messages: number
  lastSeen: number | null
  retained: boolean
  /** Short text of the retained message's payload, when the bridge saw it (never rendered as HTML). */
  retainedValue?: string | null
  /** Short text of the last payload (already a preview; never rendered as HTML). */
  lastValue: string | null
}

export interface TopicNode {
  /** This level's name ("" is a valid MQTT level). */
  name: string
  /** The full path ("sensors/kitchen/temp"). */
  path: string
  depth: number
  /** Set when this path itself is a topic that carried messages. */
  info: TopicInfo | null
  children: TopicNode[]
  /** Messages on this topic and every topic below it. */
  total: number
  /** Number of topics at or below this node. */
  topicCount: number
}

/** Builds a sorted tree; when `query` is given only topics whose path contains it (case-insensitive). */
export function buildTopicTree(topics: Iterable<TopicInfo>, query = ''): TopicNode {
  const root: TopicNode = { name: '', path: '', depth: -1, info: null, children: [], total: 0, topicCount: 0 }
  const index = new Map<TopicNode, Map<string, TopicNode>>()
  const q = query.trim().toLowerCase()
  for (const info of topics) {
    if (q && !info.topic.toLowerCase().includes(q)) continue
    const levels = info.topic.split('/')
    let node = root
    for (let i = 0; i < levels.length; i++) {
      let kids = index.get(node)
      if (!kids) {
        kids = new Map()
        index.set(node, kids)
      }
      let child = kids.get(levels[i])
      if (!child) {
        child = {
          name: levels[i],
          path: levels.slice(0, i + 1).join('/'),
          depth: i,
          info: null,
          children: [],
          total: 0,
          topicCount: 0,
        }
        kids.set(levels[i], child)
        node.children.push(child)
      }
      node = child
    }
    node.info = info
  }
  const finish = (node: TopicNode): void => {
    let total = node.info ? node.info.messages : 0
    let count = node.info ? 1 : 0
    node.children.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }))
    for (const c of node.children) {
      finish(c)
      total += c.total
      count += c.topicCount
    }
    node.total = total
    node.topicCount = count
  }
  finish(root)
  return root
}

export interface FlatRow {
  node: TopicNode
  expanded: boolean
  hasChildren: boolean
}

/** The rows a tree view shows: a node's children appear when it is expanded (or all, with expandAll). */
export function flattenTree(root: TopicNode, expanded: ReadonlySet<string>, expandAll = false): FlatRow[] {
  const rows: FlatRow[] = []
  const visit = (node: TopicNode): void => {
    for (const child of node.children) {
      const hasChildren = child.children.length > 0
      const isOpen = hasChildren && (expandAll || expanded.has(child.path))
      rows.push({ node: child, expanded: isOpen, hasChildren })
      if (isOpen) visit(child)
    }
  }
  visit(root)
  return rows
}

/** Finds a node by its full path ("" is the empty first level of topics like "/a", not the root). */
export function findNode(root: TopicNode, path: string): TopicNode | null {
  let node: TopicNode | undefined = root
  for (const level of path.split('/')) {
    node = node.children.find((c) => c.name === level)
    if (!node) return null
  }
  return node
}
