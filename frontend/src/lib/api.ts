/** REST calls to the dashboard server (docs/dashboard-api.md). The session cookie authenticates. */
import { brokerPath } from './brokerChoice'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown = null,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

let unauthorizedHandler: (() => void) | null = null

/** Called whenever a request answers 401 (the session expired or was never there). */
export function onUnauthorized(fn: (() => void) | null): void {
  unauthorizedHandler = fn
}

function describe(status: number, body: unknown): string {
  if (body && typeof body === 'object' && 'error' in body) {
    const e = (body as { error: unknown }).error
    if (typeof e === 'string' && e) return e
  }
  switch (status) {
    case 401:
      return 'Not logged in.'
    case 403:
      return 'Forbidden (the request did not come from this page’s origin).'
    case 413:
      return 'The request is too large.'
    case 503:
      return 'No data yet: the bridge has not published this.'
    case 504:
      return 'The bridge did not answer. Is it running?'
    default:
      return `The server answered ${status}.`
  }
}

export async function apiRequest<T>(method: string, path: string, body?: unknown, skipAuthHook = false): Promise<T> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    ;(init.headers as Record<string, string>)['Content-Type'] = 'application/json'
  }
  let res: Response
  try {
    res = await fetch(brokerPath(path), init)
  } catch (e) {
    throw new ApiError(0, `The dashboard server cannot be reached (${e instanceof Error ? e.message : String(e)}).`)
  }
  let data: unknown = null
  const text = await res.text()
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = text
    }
  }
  if (!res.ok) {
    if (res.status === 401 && !skipAuthHook && unauthorizedHandler) unauthorizedHandler()
    throw new ApiError(res.status, describe(res.status, data), data)
  }
  return data as T
}

export const api = {
  get: <T>(path: string) => apiRequest<T>('GET', path),
  post: <T>(path: string, body?: unknown) => apiRequest<T>('POST', path, body ?? {}),
  del: <T>(path: string) => apiRequest<T>('DELETE', path),
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? `?${s}` : ''
}
