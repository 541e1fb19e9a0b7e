// Saved publishes, kept on the server for every user (docs/dashboard-api.md, "Saved publishes"):
// named templates and the last publishes with their results. Nothing of it is stored in the browser.
import { reactive } from 'vue'
import { api, ApiError, apiRequest } from '../lib/api'
import type { CommandResult, Encoding } from '../types'
import { RECENT_KEY } from './recentPublishes'

export interface PublishProperties {
  content_type?: string
  payload_format_indicator?: number
  message_expiry_interval?: number
  response_topic?: string
  correlation_data?: string
  user_properties?: [string, string][]
}

export interface PublishTemplate {
  id: string
  name: string
  topic: string
  payload: string
  encoding: Encoding
  qos: number
  retain: boolean
  properties?: PublishProperties
  created_at?: number
  updated_at?: number
}

export type TemplateFields = Omit<PublishTemplate, 'id' | 'created_at' | 'updated_at'>

export interface PublishRecord {
  timestamp: number
  topic: string | null
  /** Null when the payload was too large to keep (payload_chars says how large). */
  payload: string | null
  payload_chars?: number
  encoding?: Encoding | null
  qos?: number | null
  retain?: boolean | null
  properties?: PublishProperties
  template?: string | null
  ok: boolean
  status?: number
  error?: string | null
}

export const publishLibrary = reactive({
  templates: [] as PublishTemplate[],
  history: [] as PublishRecord[],
  historyLimit: 50,
  error: null as string | null,
})

// Earlier versions kept recent publishes in localStorage; the server has them now.
try {
  localStorage.removeItem(RECENT_KEY)
} catch {
  // storage unavailable
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

export async function refreshTemplates(): Promise<void> {
  try {
    const body = await api.get<{ templates?: PublishTemplate[] }>('/api/publish/templates')
    publishLibrary.templates = Array.isArray(body?.templates) ? body.templates : []
    publishLibrary.error = null
  } catch (e) {
    publishLibrary.error = message(e)
  }
}

export async function refreshHistory(): Promise<void> {
  try {
    const body = await api.get<{ publishes?: PublishRecord[]; limit?: number }>('/api/publish/history')
    publishLibrary.history = Array.isArray(body?.publishes) ? body.publishes : []
    if (typeof body?.limit === 'number') publishLibrary.historyLimit = body.limit
  } catch (e) {
    publishLibrary.error = message(e)
  }
}

/** Create (no id) or replace a template; throws ApiError with the server's reason when refused. */
export async function saveTemplate(fields: TemplateFields, id?: string): Promise<PublishTemplate> {
  const saved = id
    ? await apiPut<PublishTemplate>(`/api/publish/templates/${encodeURIComponent(id)}`, fields)
    : await api.post<PublishTemplate>('/api/publish/templates', fields)
  await refreshTemplates()
  return saved
}

function apiPut<T>(path: string, body: unknown): Promise<T> {
  return apiRequest<T>('PUT', path, body)
}

export async function deleteTemplate(id: string): Promise<void> {
  await api.del(`/api/publish/templates/${encodeURIComponent(id)}`)
  await refreshTemplates()
}

export async function clearHistory(): Promise<void> {
  await api.del('/api/publish/history')
  publishLibrary.history = []
}

export interface RunResult {
  ok: boolean
  text: string
}

/** Publish a template in one click; the server records it in the history. */
export async function runTemplate(t: PublishTemplate): Promise<RunResult> {
  try {
    await api.post<CommandResult>(`/api/publish/templates/${encodeURIComponent(t.id)}/run`)
    return { ok: true, text: `Published “${t.name}” to ${t.topic} — the bridge confirmed it.` }
  } catch (e) {
    const text = e instanceof ApiError && e.status === 504 ? `The bridge did not answer: ${e.message}` : message(e)
    return { ok: false, text }
  } finally {
    await refreshHistory()
  }
}
