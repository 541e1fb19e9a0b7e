// The bridge's live broker settings (GET /api/broker/connection), read when a view needs them.
import { ref } from 'vue'
import { api } from '../lib/api'
import type { ConnectionSettings } from '../types'

export const brokerConnection = ref<ConnectionSettings | null>(null)
export const brokerConnectionError = ref('')

export async function loadBrokerConnection(): Promise<ConnectionSettings | null> {
  try {
    brokerConnection.value = await api.get<ConnectionSettings>('/api/broker/connection')
    brokerConnectionError.value = ''
  } catch (e) {
    brokerConnectionError.value = e instanceof Error ? e.message : String(e)
  }
  return brokerConnection.value
}
