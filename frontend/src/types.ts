// Wire types, as described in docs/dashboard-api.md and docs/channels.md.
// Every field coming from the server is treated as possibly missing.

export type Encoding = 'utf-8' | 'base64'
export type AuthMode = 'token' | 'password' | 'off'
export type Role = 'viewer' | 'operator' | 'admin'

/** Who is logged in (GET /api/session's `user`, the snapshot's `user`). */
export interface SessionUser {
  name: string
  role: Role
  /** A tenant user sees and does only what is under `topic` on `broker`. */
  tenant: string | null
  broker: string | null
  topic: string | null
  /** False for the bootstrap admin (the token or DASHBOARD_PASSWORD). */
  named: boolean
}

/** A user as GET /api/users lists them (never a password). */
export interface DashboardUser {
  username: string
  role: Role
  tenant: string | null
  broker: string | null
  disabled: boolean
  created_at: number
  updated_at: number
}

/** One entry of the audit trail (GET /api/audit). */
export interface AuditEntry {
  id: string
  timestamp: number
  user: string | null
  role: Role | null
  tenant: string | null
  action: string
  outcome: 'ok' | 'denied' | 'failed'
  status: number | null
  broker: string | null
  address: string | null
  detail: Record<string, unknown>
  error: string | null
}

export interface MqttMessage {
  type?: string
  timestamp: number
  topic: string
  payload: string
  encoding?: Encoding | string
  qos?: number
  retain?: boolean
  /** Set by the bridge when the payload was cut to PAYLOAD_MAX_BYTES; size is the real length. */
  truncated?: boolean
  size?: number
  /** Stream id, present on history entries. */
  id?: string
  /** MQTT 5 properties, present only when the message had some (docs/channels.md). */
  properties?: MessageProperties | null
}

export interface MessageProperties {
  content_type?: string
  payload_format_indicator?: number
  message_expiry_interval?: number
  response_topic?: string
  correlation_data?: string
  user_properties?: [string, string][]
}

/** GET /api/broker/connection: the bridge's live settings (the password only as set / not set). */
export interface ConnectionSettings {
  host?: string
  port?: number
  broker?: string
  protocol?: string
  tls?: boolean
  tls_ca?: string | null
  tls_cert?: string | null
  tls_key?: string | null
  tls_insecure?: boolean
  username?: string | null
  password?: 'set' | 'not set' | string
  client_id?: string
  keepalive?: number
  source?: 'environment' | 'saved' | string
  updated_at?: number
  secret_key?: boolean
}

/** A message as kept by the browser: a local sequence number gives a stable key. */
export interface StoredMessage {
  seq: number
  msg: MqttMessage
}

export interface MessagesFrame {
  messages?: MqttMessage[]
  skipped?: number
}

export interface LoadTriple {
  '1min'?: number | null
  '5min'?: number | null
  '15min'?: number | null
}

export interface StatsData {
  version?: string | null
  uptime_seconds?: number | null
  clients_connected?: number | null
  clients_disconnected?: number | null
  clients_total?: number | null
  clients_maximum?: number | null
  messages_received?: number | null
  messages_sent?: number | null
  messages_stored?: number | null
  publish_dropped?: number | null
  /** How much publish_dropped rose over the last minute (loss at the broker, by the bridge). */
  publish_dropped_recent?: number | null
  bytes_received?: number | null
  bytes_sent?: number | null
  subscriptions?: number | null
  retained_messages?: number | null
  heap_current?: number | null
  heap_maximum?: number | null
  load?: Record<string, LoadTriple | null | undefined> | null
  rates?: {
    messages_received_per_s?: number | null
    messages_sent_per_s?: number | null
    bytes_received_per_s?: number | null
    bytes_sent_per_s?: number | null
    publish_dropped_per_s?: number | null
  } | null
}

export interface StatsMessage {
  type?: string
  timestamp?: number
  data?: StatsData | null
}

export interface BrokerStatus {
  type?: string
  timestamp?: number
  connected?: boolean | null
  broker?: string | null
  reason?: string | null
  since?: number | null
  last_connected_at?: number | null
  last_disconnected_at?: number | null
}

export interface ClientInfo {
  client_id?: string | null
  address?: string | null
  username?: string | null
  protocol?: string | number | null
  keepalive?: number | null
  connected_at?: number | null
}

export interface ClientsMessage {
  type?: string
  timestamp?: number
  clients?: ClientInfo[] | null
  /** For a tenant user, why no client can be shown (the tenant's accounts are unknown). */
  error?: string | null
}

export interface TopicIndexEntry {
  topic: string
  messages?: number | null
  last_seen?: number | null
  retained?: boolean | null
  last_payload_preview?: string | null
  retained_payload_preview?: string | null
}

export interface TopicsMessage {
  type?: string
  timestamp?: number
  topics?: TopicIndexEntry[] | null
  /** For a tenant user: the tenant's own counts (the broker's $SYS totals are not theirs). */
  summary?: TenantSummary | null
}

export interface TenantSummary {
  topics?: number | null
  messages?: number | null
  retained?: number | null
  last_seen?: number | null
}

export interface BridgeHealth {
  online?: boolean | null
  heartbeat_age?: number | null
  /** The heartbeat is in Redis but cannot be read (damaged): why, in words. */
  problem?: string | null
  pid?: number | null
  version?: string | null
  started_at?: number | null
  counters?: Record<string, number> | null
  group?: BridgeGroup | null
}

/** A member of a bridge group (BRIDGE_GROUP), from mqtt:bridge:members. */
export interface BridgeMember {
  member: string
  leader?: boolean | null
  alive?: boolean | null
  connected?: boolean | null
  pid?: number | null
  host?: string | null
  started_at?: number | null
  timestamp?: number | null
  died_at?: number | null
  estimated_lost?: number | null
  counters?: Record<string, number> | null
}

export interface BridgeGroup {
  name: string
  leader?: string | null
  members?: BridgeMember[] | null
}

export interface Snapshot {
  worker?: number
  auth?: AuthMode
  user?: SessionUser | null
  status?: BrokerStatus | null
  stats?: StatsMessage | null
  clients?: ClientsMessage | null
  topics?: TopicsMessage | null
  bridge?: BridgeHealth | null
  messages?: MqttMessage[] | null
}

export interface CommandResult {
  type?: string
  id?: string | null
  command?: string
  ok?: boolean
  error?: string | null
  /** "unknown" when it failed but may have happened all the same (a publish sent, never acknowledged). */
  outcome?: string
  [key: string]: unknown
}

export interface Subscription {
  filter: string
  qos?: number
  created_at?: number | null
  source?: 'command' | 'config' | string
  messages?: number | null
  bytes?: number | null
  last_message_at?: number | null
  paused?: boolean | null
}

export type PayloadMode = 'text' | 'json' | 'hex'

/** GET /api/tenants (docs/dashboard-api.md "Tenants"). */
export interface TenantAccount {
  username: string
  disabled: boolean
}

export interface Tenant {
  name: string
  topic: string
  accounts: TenantAccount[]
}

export interface TenantList {
  prefix: string
  tenants: Tenant[]
}

/** POST /api/tenants/<name>/accounts: the only time the password is ever sent. */
export interface NewAccount {
  tenant: string
  username: string
  password: string
}
