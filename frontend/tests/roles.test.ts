import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import LoginView from '../src/views/LoginView.vue'
import PublishView from '../src/views/PublishView.vue'
import UsersView from '../src/views/UsersView.vue'
import { canAdminister, canOperate, checkSession, session } from '../src/stores/session'
import type { SessionUser } from '../src/types'

function user(role: SessionUser['role'], tenant: string | null = null): SessionUser {
  return { name: 'pat', role, tenant, broker: tenant ? 'default' : null, topic: tenant ? `tenants/${tenant}/#` : null, named: true }
}

/** A fetch that answers by "METHOD path", recording each call. */
function server(routes: Record<string, (body: unknown) => [number, unknown]>) {
  const calls: { key: string; body: unknown }[] = []
  vi.stubGlobal(
    'fetch',
    vi.fn(async (path: string, init: RequestInit) => {
      const key = `${init.method} ${path}`
      const body = init.body ? JSON.parse(String(init.body)) : undefined
      calls.push({ key, body })
      const [status, answer] = routes[key]?.(body) ?? [404, { error: `no route ${key}` }]
      return new Response(JSON.stringify(answer), { status })
    }),
  )
  return calls
}

describe('roles in the page', () => {
  beforeEach(() => {
    Object.assign(session, { checked: true, authenticated: true, auth: 'token', users: true, user: null, error: '' })
    localStorage.clear()
  })
  afterEach(() => vi.unstubAllGlobals())

  it('knows each role from the session and keeps it out of browser storage', async () => {
    server({ 'GET /api/session': () => [200, { authenticated: true, auth: 'token', users: true, user: user('operator') }] })
    await checkSession()
    expect(canOperate.value).toBe(true)
    expect(canAdminister.value).toBe(false)
    expect(JSON.stringify({ ...localStorage })).not.toContain('operator')
    expect(sessionStorage.length).toBe(0)
  })

  it('locks the publish form for a viewer and says why', async () => {
    server({ 'GET /api/publish/templates': () => [200, { templates: [] }], 'GET /api/publish/history': () => [200, { publishes: [] }] })
    session.user = user('viewer')
    const w = mount(PublishView, { props: { nowMs: Date.now() } })
    await flushPromises()
    expect(w.get('[data-testid="publish-role-note"]').text()).toContain('Publishing needs the operator role')
    // off through their fieldset, as a browser (and the e2e test) sees them
    expect(w.get('[data-testid="publish-submit"]').element.matches(':disabled')).toBe(true)
    expect(w.get('[data-testid="publish-topic"]').element.matches(':disabled')).toBe(true)
  })

  it('shows an operator of a tenant where they may publish', async () => {
    server({ 'GET /api/publish/templates': () => [200, { templates: [] }], 'GET /api/publish/history': () => [200, { publishes: [] }] })
    session.user = user('operator', 'acme')
    const w = mount(PublishView, { props: { nowMs: Date.now() } })
    await flushPromises()
    expect(w.find('[data-testid="publish-role-note"]').exists()).toBe(false)
    expect(w.get('[data-testid="publish-submit"]').element.matches(':disabled')).toBe(false)
    expect(w.get('[data-testid="publish-tenant-hint"]').text()).toContain('tenants/acme/#')
    expect(w.find('[data-testid="publish-history-clear"]').exists()).toBe(false)
  })

  it('logs in with a user name and password once users exist', async () => {
    const calls = server({
      'POST /api/login': () => [200, { authenticated: true, user: user('viewer') }],
    })
    Object.assign(session, { authenticated: false, users: true })
    const w = mount(LoginView)
    await w.get('[data-testid="login-username"]').setValue('pat')
    await w.get('[data-testid="login-user-password"]').setValue('a long password')
    await w.get('[data-testid="login-form"]').trigger('submit')
    await flushPromises()
    expect(calls[0]).toEqual({ key: 'POST /api/login', body: { username: 'pat', password: 'a long password' } })
    expect(session.authenticated).toBe(true)
    expect(session.user?.role).toBe('viewer')
  })

  it('offers the token first on a fresh install, as before', () => {
    Object.assign(session, { authenticated: false, users: false })
    const w = mount(LoginView)
    expect(w.find('[data-testid="login-token"]').exists()).toBe(true)
    expect(w.find('[data-testid="login-username"]').exists()).toBe(false)
  })

  it('adds a user, changes a role, and forgets the password it sent', async () => {
    let listed: unknown[] = []
    const calls = server({
      'GET /api/users': () => [200, { users: listed }],
      'POST /api/users': (body) => {
        const b = body as { username: string; role: string; tenant?: string }
        listed = [{ username: b.username, role: b.role, tenant: b.tenant ?? null, broker: b.tenant ? 'default' : null, disabled: false, created_at: 1, updated_at: 1 }]
        return [201, listed[0]]
      },
      'PATCH /api/users/pat': () => [200, {}],
    })
    session.user = user('admin')
    const w = mount(UsersView)
    await flushPromises()
    await w.get('[data-testid="user-name"]').setValue('pat')
    await w.get('[data-testid="user-password"]').setValue('a long password')
    await w.get('[data-testid="user-role"]').setValue('operator')
    await w.get('[data-testid="user-tenant"]').setValue('acme')
    await w.get('[data-testid="user-form"]').trigger('submit')
    await flushPromises()
    expect(calls.find((c) => c.key === 'POST /api/users')?.body).toEqual({
      username: 'pat',
      password: 'a long password',
      role: 'operator',
      tenant: 'acme',
    })
    expect((w.get('[data-testid="user-password"]').element as HTMLInputElement).value).toBe('')
    expect(w.get('[data-user="pat"]').text()).toContain('tenant acme on default')
    await w.get('[data-testid="user-row-role"]').setValue('viewer')
    await flushPromises()
    expect(calls.find((c) => c.key === 'PATCH /api/users/pat')?.body).toEqual({ role: 'viewer' })
  })
})
