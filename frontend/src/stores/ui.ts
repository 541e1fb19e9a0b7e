import { reactive } from 'vue'
import type { Encoding, Role } from '../types'

/**
 * The pages. `role`: the least role that sees the page at all (the server enforces the same and
 * more: docs/operations.md "Users and roles"); `tenants`: false for pages of broker-wide data or
 * settings, which a tenant user is never shown.
 */
export const VIEWS = [
  { id: 'overview', label: 'Overview', icon: '◎', role: 'viewer', tenants: true },
  { id: 'topics', label: 'Topics', icon: '⋔', role: 'viewer', tenants: true },
  { id: 'messages', label: 'Messages', icon: '≡', role: 'viewer', tenants: true },
  { id: 'publish', label: 'Publish', icon: '↗', role: 'viewer', tenants: true },
  { id: 'subscriptions', label: 'Subscriptions', icon: '⊕', role: 'viewer', tenants: true },
  { id: 'clients', label: 'Clients', icon: '▣', role: 'viewer', tenants: true },
  { id: 'connection', label: 'Connection', icon: '⇄', role: 'viewer', tenants: false },
  { id: 'tenants', label: 'Tenants', icon: '⊞', role: 'viewer', tenants: false },
  { id: 'brokers', label: 'All brokers', icon: '⊞', role: 'viewer', tenants: false },
  { id: 'users', label: 'Users', icon: '⊚', role: 'admin', tenants: false },
  { id: 'audit', label: 'Audit trail', icon: '⊟', role: 'admin', tenants: false },
  { id: 'account', label: 'My account', icon: '◉', role: 'viewer', tenants: true },
] as const satisfies readonly { id: string; label: string; icon: string; role: Role; tenants: boolean }[]

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
