import { reactive } from 'vue'
import { io, type Socket } from 'socket.io-client'
import { shallowRef } from 'vue'
import type {
  TenantSummary,
  BridgeHealth,
  BrokerStatus,
  ClientsMessage,
  MessagesFrame,
  Snapshot,
  StatsMessage,
  TopicsMessage,
} from '../types'
import { broker, messages, topics } from './index'
import { checkSession, session } from './session'
import { currentBroker } from '../lib/brokerChoice'

export type SocketState = 'idle' | 'connecting' | 'connected' | 'reconnecting'

/** The browser's own connection to the dashboard (Socket.IO, WebSocket transport only). */
export const connection = reactive({
  state: 'idle' as SocketState,
  attempt: 0,
  error: '',
  /** The worker process that served this connection's snapshot. */
  worker: null as number | null,
  /** The topic filter the server applies to mqtt_messages frames. */
  serverFilter: '',
  serverFilterError: '',
})

/** A tenant user's own counts (the server sends them with the tenant's topics). */
export const tenantSummary = shallowRef<TenantSummary | null>(null)

let socket: Socket | null = null
let tickTimer: ReturnType<typeof setInterval> | null = null
let retryTimer: ReturnType<typeof setTimeout> | null = null

/** Applies the `snapshot` event a (re)connection starts with. */
export function applySnapshot(s: Snapshot | null | undefined): void {
  if (!s || typeof s !== 'object') return
  if (typeof s.worker === 'number') connection.worker = s.worker
  if (s.auth === 'off' || s.auth === 'token' || s.auth === 'password') session.auth = s.auth
  if (s.user && typeof s.user === 'object') session.user = s.user
  tenantSummary.value = s.topics?.summary ?? null
  broker.applyStatus(s.status)
  broker.applyStats(s.stats)
  broker.applyClients(s.clients)
  broker.applyBridge(s.bridge)
  if (s.topics) topics.applyIndex(s.topics.topics, s.topics.timestamp, true)
  messages.loadSnapshot(s.messages)
}

export function startLive(): void {
  if (socket) return
  connection.state = 'connecting'
  socket = io({
    path: '/socket.io',
    transports: ['websocket'],
    withCredentials: true,
    // The broker this page shows; the server sends this socket that broker's frames only.
    auth: { broker: currentBroker() },
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
  })
  const s = socket

  s.on('connect', () => {
    connection.state = 'connected'
    connection.attempt = 0
    connection.error = ''
    // A new connection (maybe on another worker) starts unfiltered: apply the filter again.
    if (connection.serverFilter) void sendFilter(connection.serverFilter)
  })
  s.on('disconnect', (reason) => {
    if (reason === 'io client disconnect') {
      connection.state = 'idle'
      return
    }
    connection.state = 'reconnecting'
    connection.error = reason
    // The server closed the connection on purpose (e.g. the session ended): reconnect by hand.
    if (reason === 'io server disconnect') scheduleManualRetry()
  })
  s.io.on('reconnect_attempt', (n) => {
    connection.attempt = n
  })
  s.on('connect_error', (err) => {
    connection.state = 'reconnecting'
    connection.error = err?.message ?? String(err)
    // A refusal by the server (not a network error) is not retried by socket.io itself.
    if (!s.active) scheduleManualRetry()
  })

  s.on('snapshot', (data: Snapshot) => applySnapshot(data))
  s.on('broker_status', (data: BrokerStatus) => broker.applyStatus(data))
  s.on('broker_stats', (data: StatsMessage) => broker.applyStats(data))
  s.on('clients_update', (data: ClientsMessage) => broker.applyClients(data))
  s.on('topics_update', (data: TopicsMessage) => {
    topics.applyIndex(data?.topics, data?.timestamp)
    if (data?.summary) tenantSummary.value = data.summary
  })
  s.on('bridge_health', (data: BridgeHealth) => broker.applyBridge(data))
  s.on('mqtt_messages', (data: MessagesFrame) => messages.ingestFrame(data))

  tickTimer = setInterval(() => messages.tick(), 1000)
}

function scheduleManualRetry(): void {
  if (retryTimer) return
  retryTimer = setTimeout(async () => {
    retryTimer = null
    if (!socket) return
    await checkSession()
    if (!session.authenticated) return // the login page takes over; stopLive() follows
    connection.attempt++
    socket.connect()
  }, 2000)
}

export function stopLive(): void {
  if (retryTimer) clearTimeout(retryTimer)
  retryTimer = null
  if (tickTimer) clearInterval(tickTimer)
  tickTimer = null
  if (socket) {
    socket.removeAllListeners()
    socket.io.removeAllListeners()
    socket.disconnect()
  }
  socket = null
  connection.state = 'idle'
}

export interface FilterAck {
  ok: boolean
  error?: string
}

/** Asks the server to send only messages matching `filter` ('' = everything). */
export function sendFilter(filter: string): Promise<FilterAck> {
  connection.serverFilter = filter
  connection.serverFilterError = ''
  const s = socket
  if (!s || !s.connected) return Promise.resolve({ ok: true }) // applied on the next connect
  return new Promise((resolve) => {
    s.timeout(5000).emit('set_filter', { filter }, (err: Error | null, ack: FilterAck | undefined) => {
      const result: FilterAck = err
        ? { ok: false, error: 'The server did not confirm the filter.' }
        : ack && typeof ack === 'object'
          ? ack
          : { ok: true }
      if (!result.ok) connection.serverFilterError = result.error ?? 'The server refused the filter.'
      resolve(result)
    })
  })
}
