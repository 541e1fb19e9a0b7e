import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { checkSession, consumeUrlToken, login, logout, session, sessionExpired } from '../src/stores/session'
import { RECENT_KEY, recentPublishes, rememberPublish } from '../src/stores/recentPublishes'

function respond(status: number, body: unknown) {
  return vi.fn().mockResolvedValue(new Response(JSON.stringify(body), { status }))
}

describe('session', () => {
  beforeEach(() => {
    Object.assign(session, { checked: false, authenticated: false, auth: 'token', error: '', unreachable: false })
  })
  afterEach(() => {
    vi.unstubAllGlobals()
    window.history.replaceState(null, '', '/')
  })

  it('clears the recent publishes from localStorage at logout', async () => {
    session.authenticated = true
    rememberPublish({ topic: 'door/lock', payload: 'secret-code-1234', qos: 0, retain: false, encoding: 'utf-8', at: 1, ok: true })
    expect(localStorage.getItem(RECENT_KEY)).toContain('secret-code-1234')
    vi.stubGlobal('fetch', respond(200, { authenticated: false }))

    await logout()

    expect(localStorage.getItem(RECENT_KEY)).toBeNull()
    expect(recentPublishes.value).toEqual([])
    expect(session.authenticated).toBe(false)
  })

  it('clears them too when the server says the session has ended', () => {
    rememberPublish({ topic: 'a', payload: 'p', qos: 0, retain: false, encoding: 'utf-8', at: 1, ok: true })

    sessionExpired()

    expect(localStorage.getItem(RECENT_KEY)).toBeNull()
  })

  it('asks for a password when the server says so', async () => {
    vi.stubGlobal('fetch', respond(200, { authenticated: false, auth: 'password' }))
    await checkSession()
    expect(session).toMatchObject({ checked: true, authenticated: false, auth: 'password' })
  })

  it('treats auth "off" as logged in', async () => {
    vi.stubGlobal('fetch', respond(200, { authenticated: false, auth: 'off' }))
    await checkSession()
    expect(session.authenticated).toBe(true)
  })

  it('logs in with the token field and says when it is wrong', async () => {
    const ok = respond(200, { authenticated: true })
    vi.stubGlobal('fetch', ok)
    expect(await login('s3cret')).toBe(true)
    expect(JSON.parse(ok.mock.calls[0][1].body)).toEqual({ token: 's3cret' })
    session.authenticated = false
    vi.stubGlobal('fetch', respond(401, { error: 'wrong token' }))
    expect(await login('nope')).toBe(false)
    expect(session.error).toBe('Wrong token.')
  })

  it('sends a password as {password}', async () => {
    session.auth = 'password'
    const ok = respond(200, { authenticated: true })
    vi.stubGlobal('fetch', ok)
    await login('pw')
    expect(JSON.parse(ok.mock.calls[0][1].body)).toEqual({ password: 'pw' })
  })

  it('tells when the server cannot be reached', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))
    await checkSession()
    expect(session.unreachable).toBe(true)
    expect(session.error).toContain('cannot be reached')
  })

  it('explains a refused login link and removes it from the address bar', async () => {
    window.history.replaceState(null, '', '/?login=failed#/topics')
    await consumeUrlToken()
    expect(session.error).toMatch(/not accepted/)
    expect(window.location.search).toBe('')
    expect(window.location.hash).toBe('#/topics')
  })

  it('asks for the token when the server did not use a link another site opened', async () => {
    session.authenticated = false
    window.history.replaceState(null, '', '/?login=unchecked')
    await consumeUrlToken()
    expect(session.error).toMatch(/paste the token/)
    expect(window.location.search).toBe('')
  })

  it('uses a token left in the URL and strips it', async () => {
    window.history.replaceState(null, '', '/?token=abc')
    const ok = respond(200, { authenticated: true })
    vi.stubGlobal('fetch', ok)
    await consumeUrlToken()
    expect(window.location.search).toBe('')
    expect(JSON.parse(ok.mock.calls[0][1].body)).toEqual({ token: 'abc' })
    expect(session.authenticated).toBe(true)
  })
})
