import { computed, reactive } from 'vue'
import { api, ApiError } from '../lib/api'
import { clearPublishesFromStorage } from './recentPublishes'
import type { AuthMode, Role, SessionUser } from '../types'

export const session = reactive({
  /** False until GET /api/session has answered once. */
  checked: false,
  authenticated: false,
  auth: 'token' as AuthMode,
  /** Whether named users exist: the login page then offers the user form first. */
  users: false,
  /** Who is logged in; null until known. Only ever in memory, never in browser storage. */
  user: null as SessionUser | null,
  /** Why the session could not be checked or the login failed. */
  error: '',
  busy: false,
  /** True when the last session check could not reach the server at all. */
  unreachable: false,
})

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 }

/** Whether the user's role is at least `role` (the server decides; this only shapes the page). */
export function hasRole(role: Role): boolean {
  const mine = session.auth === 'off' ? 'admin' : session.user?.role
  return mine !== undefined && RANK[mine] >= RANK[role]
}

/** Reactive: operator or admin (publish, subscribe, pause/resume, clear retained). */
export const canOperate = computed(() => hasRole('operator'))
/** Reactive: admin (the broker connection, tenants, users, the audit trail). */
export const canAdminister = computed(() => hasRole('admin'))
/** Reactive: the tenant's topic filter when the user is a tenant's, else null. */
export const tenantTopic = computed(() => session.user?.topic ?? null)

/** "a viewer", "an operator", "an admin". */
export function aRole(role: Role): string {
  return `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`
}

/** The words the page shows where a control is off for this role. */
export function roleNote(what: string, needed: Role): string {
  const who = session.user ? `${session.user.name} is ${aRole(session.user.role)}` : 'your role is lower'
  return `${what} needs the ${needed} role or higher; ${who}. Ask an admin for the ${needed} role.`
}

interface SessionAnswer {
  authenticated?: boolean
  auth?: AuthMode
  users?: boolean
  user?: SessionUser | null
}

function apply(answer: SessionAnswer): void {
  if (answer.auth === 'token' || answer.auth === 'password' || answer.auth === 'off') session.auth = answer.auth
  session.authenticated = answer.auth === 'off' ? true : Boolean(answer.authenticated)
  session.users = Boolean(answer.users)
  session.user = answer.user && typeof answer.user === 'object' ? answer.user : null
}

export async function checkSession(): Promise<void> {
  try {
    apply(await api.get<SessionAnswer>('/api/session'))
    session.error = ''
    session.unreachable = false
  } catch (e) {
    session.error = e instanceof Error ? e.message : String(e)
    session.unreachable = !(e instanceof ApiError) || e.status === 0 || e.status >= 500
  } finally {
    session.checked = true
  }
}

async function logInWith(body: Record<string, string>, wrong: string): Promise<boolean> {
  session.busy = true
  session.error = ''
  try {
    const answer = await api.post<SessionAnswer>('/api/login', body)
    session.authenticated = true
    session.user = answer?.user ?? null
    return true
  } catch (e) {
    session.error = e instanceof ApiError && e.status === 401 ? wrong : e instanceof Error ? e.message : String(e)
    return false
  } finally {
    session.busy = false
  }
}

/** Logs in with the token or the dashboard password (whichever the server asks for). */
export function login(secret: string): Promise<boolean> {
  const password = session.auth === 'password'
  return logInWith(password ? { password: secret } : { token: secret }, password ? 'Wrong password.' : 'Wrong token.')
}

/** Logs in as a named user. */
export function loginUser(username: string, password: string): Promise<boolean> {
  return logInWith({ username, password }, 'Wrong user name or password.')
}

export async function logout(): Promise<void> {
  try {
    await api.post('/api/logout')
  } catch {
    // logged out either way
  }
  clearPublishesFromStorage()
  session.user = null
  session.authenticated = session.auth === 'off'
}

/** Called when any request answers 401. */
export function sessionExpired(): void {
  if (session.auth !== 'off') {
    session.authenticated = false
    session.user = null
    session.error = 'Your session has ended. Please log in again.'
    clearPublishesFromStorage() // it may have ended by a logout in another tab
  }
}

/**
 * `/?token=...` links: the server normally turns them into a cookie and redirects; if a token still
 * reaches the page and we are not logged in, try it through the login API. Either way the token is
 * removed from the address bar.
 */
export async function consumeUrlToken(): Promise<void> {
  const url = new URL(window.location.href)
  const token = url.searchParams.get('token')
  const failed = url.searchParams.get('login') === 'failed'
  // The server does not use a login link that another site (or an old browser) opened.
  const unchecked = url.searchParams.get('login') === 'unchecked'
  if (token === null && !failed && !unchecked) return
  url.searchParams.delete('token')
  url.searchParams.delete('login')
  window.history.replaceState(null, '', url.pathname + url.search + url.hash)
  // The server redirects a /?token= link whose token it refused to /?login=failed.
  if (failed && !session.authenticated) session.error = 'The token in that login link was not accepted.'
  if (unchecked && !session.authenticated) {
    session.error = 'That login link was not opened directly, so it was not used: paste the token here.'
  }
  if (!session.authenticated && session.auth === 'token' && token) await login(token)
}
