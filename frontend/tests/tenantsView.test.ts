import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import TenantsView from '../src/views/TenantsView.vue'
import { session } from '../src/stores/session'

type Route = (body: unknown) => [number, unknown]

/** A fetch that answers by "METHOD path", recording each call. */
function server(routes: Record<string, Route>) {
  const calls: { key: string; body: unknown }[] = []
  const fetchMock = vi.fn(async (path: string, init: RequestInit) => {
    const key = `${init.method} ${path}`
    const body = init.body ? JSON.parse(String(init.body)) : undefined
    calls.push({ key, body })
    const route = routes[key]
    const [status, answer] = route ? route(body) : [404, { error: `no route ${key}` }]
    return new Response(JSON.stringify(answer), { status })
  })
  vi.stubGlobal('fetch', fetchMock)
  return calls
}

const ACME = { name: 'acme', topic: 'tenants/acme/#', accounts: [{ username: 'sensor-1', disabled: false }] }

describe('TenantsView', () => {
  beforeEach(() => {
    localStorage.clear()
    sessionStorage.clear()
    vi.stubGlobal('confirm', () => true)
    session.user = { name: 'boss', role: 'admin', tenant: null, broker: null, topic: null, named: true }
  })
  afterEach(() => vi.unstubAllGlobals())

  it('lists tenants with their accounts and topic', async () => {
    server({ 'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: [ACME] }] })
    const w = mount(TenantsView)
    await flushPromises()
    const card = w.get('[data-tenant="acme"]')
    expect(card.text()).toContain('tenants/acme/#')
    expect(card.get('[data-account="sensor-1"]').text()).toContain('enabled')
  })

  it('creates a tenant and shows the broker refusal in its own words', async () => {
    let created = false
    const calls = server({
      'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: created ? [ACME] : [] }],
      'POST /api/tenants': (body) => {
        if (created) return [400, { ok: false, error: 'the broker refused createRole: Role already exists' }]
        created = (body as { name: string }).name === 'acme'
        return [201, { name: 'acme', topic: 'tenants/acme/#', accounts: [] }]
      },
    })
    const w = mount(TenantsView)
    await flushPromises()
    await w.get('[data-testid="tenant-name"]').setValue('acme')
    await w.get('[data-testid="tenant-form"]').trigger('submit')
    await flushPromises()
    expect(calls.find((c) => c.key === 'POST /api/tenants')?.body).toEqual({ name: 'acme' })
    expect(w.get('[data-testid="tenants-result"]').attributes('data-ok')).toBe('true')
    expect(w.find('[data-tenant="acme"]').exists()).toBe(true)

    await w.get('[data-testid="tenant-name"]').setValue('acme')
    await w.get('[data-testid="tenant-form"]').trigger('submit')
    await flushPromises()
    const refused = w.get('[data-testid="tenants-result"]')
    expect(refused.attributes('data-ok')).toBe('false')
    expect(refused.text()).toBe('the broker refused createRole: Role already exists')
  })

  it('refuses a tenant name that is not a topic level without asking the server', async () => {
    const calls = server({ 'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: [] }] })
    const w = mount(TenantsView)
    await flushPromises()
    await w.get('[data-testid="tenant-name"]').setValue('a/#')
    await w.get('[data-testid="tenant-form"]').trigger('submit')
    await flushPromises()
    expect(calls.map((c) => c.key)).toEqual(['GET /api/tenants'])
    expect(w.get('[data-testid="tenants-result"]').text()).toContain('lower-case')
  })

  it('shows a new password once, keeps it out of browser storage, and forgets it when dismissed', async () => {
    server({
      'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: [ACME] }],
      'POST /api/tenants/acme/accounts': () => [201, { tenant: 'acme', username: 'sensor-2', password: 'Xy9-generated-secret' }],
    })
    const w = mount(TenantsView)
    await flushPromises()
    await w.get('[data-tenant="acme"] [data-testid="account-name"]').setValue('sensor-2')
    await w.get('[data-tenant="acme"] [data-testid="account-form"]').trigger('submit')
    await flushPromises()
    expect(w.get('[data-testid="new-password-value"]').text()).toBe('Xy9-generated-secret')
    const stored = JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie
    expect(stored).not.toContain('Xy9-generated-secret')
    await w.get('[data-testid="new-password-dismiss"]').trigger('click')
    expect(w.find('[data-testid="new-password"]').exists()).toBe(false)
    expect(w.html()).not.toContain('Xy9-generated-secret')
  })

  it('copies the new password to the clipboard on request', async () => {
    server({
      'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: [ACME] }],
      'POST /api/tenants/acme/accounts': () => [201, { tenant: 'acme', username: 'sensor-3', password: 'copy-me-secret' }],
    })
    const writeText = vi.fn().mockResolvedValue(undefined)
    vi.stubGlobal('navigator', { ...navigator, clipboard: { writeText } })
    vi.stubGlobal('isSecureContext', true)
    const w = mount(TenantsView)
    await flushPromises()
    await w.get('[data-tenant="acme"] [data-testid="account-name"]').setValue('sensor-3')
    await w.get('[data-tenant="acme"] [data-testid="account-form"]').trigger('submit')
    await flushPromises()
    await w.get('[data-testid="new-password-copy"]').trigger('click')
    await flushPromises()
    expect(writeText).toHaveBeenCalledWith('copy-me-secret')
    expect(w.get('[data-testid="new-password"]').text()).toContain('Copied.')
  })

  it('disables an account and deletes a tenant through the API', async () => {
    const calls = server({
      'GET /api/tenants': () => [200, { prefix: 'tenants', tenants: [ACME] }],
      'POST /api/tenants/acme/accounts/sensor-1/disable': () => [200, { ok: true }],
      'DELETE /api/tenants/acme': () => [200, { deleted: 'acme' }],
    })
    const w = mount(TenantsView)
    await flushPromises()
    await w.get('[data-account="sensor-1"] [data-testid="account-toggle"]').trigger('click')
    await flushPromises()
    await w.get('[data-tenant="acme"] [data-testid="tenant-delete"]').trigger('click')
    await flushPromises()
    const keys = calls.map((c) => c.key)
    expect(keys).toContain('POST /api/tenants/acme/accounts/sensor-1/disable')
    expect(keys).toContain('DELETE /api/tenants/acme')
  })
})
