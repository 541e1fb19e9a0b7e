/**
 * MQTT topic filter matching (MQTT 3.1.1 §4.7 / 5.0 §4.7), including the rule that a filter
 * starting with a wildcard does not match topics starting with '$' (e.g. $SYS/...).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === '') return true // no filter: everything
  if (topic.startsWith('$') && (filter.startsWith('#') || filter.startsWith('+'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const part = f[i]
    if (part === '#') return true // matches the parent level too ("a/#" matches "a")
    if (i >= t.length) return false
    if (part !== '+' && part !== t[i]) return false
  }
  return f.length === t.length
}

/** Returns a message a person understands, or null when the filter is valid. Empty = everything. */
export function validateFilter(filter: string): string | null {
  if (filter === '') return null
  if (filter.includes('\u0000')) return 'A topic filter cannot contain a NUL character.'
  if (new TextEncoder().encode(filter).length > 65535) return 'A topic filter can be at most 65,535 bytes.'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#')) {
      if (level !== '#') return "'#' must take a whole level, e.g. sensors/#."
      if (i !== levels.length - 1) return "'#' must be the last level of a filter."
    }
    if (level.includes('+') && level !== '+') return "'+' must take a whole level, e.g. sensors/+/temp."
  }
  return null
}

/** Validates a topic to publish to: non-empty, no wildcards. */
export function validatePublishTopic(topic: string): string | null {
  if (topic === '') return 'Enter a topic to publish to.'
  if (topic.includes('#') || topic.includes('+')) return 'A publish topic cannot contain the wildcards + or #.'
  if (topic.includes('\u0000')) return 'A topic cannot contain a NUL character.'
  if (new TextEncoder().encode(topic).length > 65535) return 'A topic can be at most 65,535 bytes.'
  return null
}
