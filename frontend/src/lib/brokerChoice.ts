/**
 * Which broker this page shows (one dashboard, several brokers: docs/operations.md "Many brokers").
 *
 * The choice lives in the address (`?broker=<name>`), so a link or a reload opens the same broker,
 * and switching reloads the page: every store starts empty for the new broker, so nothing seen on
 * one broker can be left on screen as if it were another's.
 */

export const UNNAMED_BROKER = 'default'
const NAME = /^[a-z0-9-]{1,32}$/

/** The REST routes that belong to the dashboard, not to one broker. */
const GLOBAL = ['/api/session', '/api/login', '/api/logout', '/api/brokers', '/api/users', '/api/audit']

export function brokerFromSearch(search: string): string {
  const asked = new URLSearchParams(search).get('broker')
  return asked && NAME.test(asked) ? asked : UNNAMED_BROKER
}

export function currentBroker(): string {
  return typeof window === 'undefined' ? UNNAMED_BROKER : brokerFromSearch(window.location.search)
}

/** `/api/x` for the unnamed broker (as always), `/api/brokers/<name>/x` for a named one. */
export function brokerPath(path: string, broker: string = currentBroker()): string {
  if (broker === UNNAMED_BROKER || !path.startsWith('/api/')) return path
  if (GLOBAL.some((g) => path === g || path.startsWith(g + '/') || path.startsWith(g + '?'))) return path
  return `/api/brokers/${encodeURIComponent(broker)}${path.slice(4)}`
}

/** The address of this page for another broker (same view). */
export function urlForBroker(broker: string, loc: { pathname: string; search: string; hash: string }): string {
  const params = new URLSearchParams(loc.search)
  params.delete('login')
  if (broker === UNNAMED_BROKER) params.delete('broker')
  else params.set('broker', broker)
  const search = params.toString()
  return `${loc.pathname}${search ? '?' + search : ''}${loc.hash}`
}

export function switchBroker(broker: string, view?: string): void {
  if (!NAME.test(broker) || typeof window === 'undefined') return
  const hash = view ? `#/${view}` : window.location.hash
  window.location.assign(urlForBroker(broker, { ...window.location, hash }))
}
