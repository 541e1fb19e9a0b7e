import { reactive } from 'vue'
import { api, ApiError } from '../lib/api'
import { clearPublishesFromStorage } from './recentPublishes'
import type { AuthMode } from '../types'

export const session = reactive({
  /** False until GET /api/session has answered once. */
  checked: false,
  authenticated: false,
  auth: 'token' as AuthMode,
  /** Why the session could not be checked or the login failed. */
  error: '',
  busy: false,
  /** True when the last session check could not reach the server at all. */
  unreachable: false,
})

interface SessionAnswer {
  authenticated?: boolean
  auth?: AuthMode
}

function apply(answer: SessionAnswer): void {
  if (answer.auth === 'token' || answer.auth === 'password' || answer.auth === 'off') session.auth = answer.auth
  session.authenticated = answer.auth === 'off' ? true : Boolean(answer.authenticated)
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

/** Logs in with a token or password (whichever the server asks for). Returns true on success. */
export async function login(secret: string): Promise<boolean> {
  session.busy = true
  session.error = ''
  try {
    const body = session.auth === 'password' ? { password: secret } : { token: secret }
    await api.post('/api/login', body)
    session.authenticated = true
    return true
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.error = session.auth === 'password' ? 'Wrong password.' : 'Wrong token.'
    } else {
      session.error = e instanceof Error ? e.message : String(e)
    }
    return false
  } finally {
    session.busy = false
  }
}

export async function logout(): Promise<void> {
  try {
    await api.post('/api/logout')
  } catch {
    // logged out either way
  }
  clearPublishesFromStorage()
  session.authenticated = session.auth === 'off'
}

/** Called when any request answers 401. */
export function sessionExpired(): void {
  if (session.auth !== 'off') {
    session.authenticated = false
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
