import { ref } from 'vue'
import type { Encoding } from '../types'

export interface RecentPublish {
  topic: string
  payload: string
  qos: number
  retain: boolean
  encoding: Encoding
  /** Unix ms of the last send. */
  at: number
  ok: boolean
}

export const RECENT_KEY = 'mqtt-dashboard:recent-publishes'
export const RECENT_MAX = 25
/** Payloads larger than this are not kept in localStorage. */
const MAX_STORED_PAYLOAD = 64 * 1024

function load(): RecentPublish[] {
  try {
    const raw = localStorage.getItem(RECENT_KEY)
    const list: unknown = raw ? JSON.parse(raw) : []
    if (!Array.isArray(list)) return []
    return list
      .filter((e): e is RecentPublish => !!e && typeof e.topic === 'string' && typeof e.payload === 'string')
      .slice(0, RECENT_MAX)
  } catch {
    return []
  }
}

export const recentPublishes = ref<RecentPublish[]>(load())

function save(): void {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(recentPublishes.value))
  } catch {
    // storage full or unavailable: the list still works for this page
  }
}

function same(a: RecentPublish, b: Omit<RecentPublish, 'at' | 'ok'>): boolean {
  return a.topic === b.topic && a.payload === b.payload && a.qos === b.qos && a.retain === b.retain && a.encoding === b.encoding
}

/** Records a publish at the top of the list (an identical earlier one moves up). */
export function rememberPublish(entry: RecentPublish): void {
  if (entry.payload.length > MAX_STORED_PAYLOAD) return
  recentPublishes.value = [entry, ...recentPublishes.value.filter((e) => !same(e, entry))].slice(0, RECENT_MAX)
  save()
}

export function forgetPublishes(): void {
  recentPublishes.value = []
  save()
}

/** At logout: nothing the user published may stay in this browser for the next person. */
export function clearPublishesFromStorage(): void {
  recentPublishes.value = []
  try {
    localStorage.removeItem(RECENT_KEY)
  } catch {
    // storage unavailable: nothing was kept there either
  }
}

/** Re-reads localStorage (tests). */
export function reloadPublishes(): void {
  recentPublishes.value = load()
}
