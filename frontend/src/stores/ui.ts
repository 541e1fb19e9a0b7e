import { reactive } from 'vue'
import type { Encoding } from '../types'

export const VIEWS = [
  { id: 'overview', label: 'Overview', icon: '◎' },
  { id: 'topics', label: 'Topics', icon: '⋔' },
  { id: 'messages', label: 'Messages', icon: '≡' },
  { id: 'publish', label: 'Publish', icon: '↗' },
  { id: 'subscriptions', label: 'Subscriptions', icon: '⊕' },
  { id: 'clients', label: 'Clients', icon: '▣' },
  { id: 'connection', label: 'Connection', icon: '⇄' },
  { id: 'tenants', label: 'Tenants', icon: '⊞' },
  { id: 'brokers', label: 'All brokers', icon: '⊞' },
] as const

export type ViewId = (typeof VIEWS)[number]['id']

function fromHash(): ViewId {
  const h = (typeof window !== 'undefined' ? window.location.hash : '').replace(/^#\/?/, '')
  return (VIEWS.find((v) => v.id === h)?.id ?? 'overview') as ViewId
}

export interface PublishDraft {
  topic: string
  payload: string
  qos: number
  retain: boolean
  encoding: Encoding
}

export const ui = reactive({
  view: fromHash(),
  /** Set by other views ("Publish to this topic", "Re-send") to prefill the publish form. */
  publishDraft: null as PublishDraft | null,
  /** Set by the Topics view ("Show in Messages") to prefill the messages filter. */
  messagesFilterRequest: null as string | null,
})

if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    ui.view = fromHash()
  })
}

export function go(view: ViewId): void {
  ui.view = view
  if (typeof window !== 'undefined' && window.location.hash !== `#/${view}`) {
    window.history.replaceState(null, '', `#/${view}`)
  }
}
