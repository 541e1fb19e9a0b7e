// Loss at the broker: mosquitto drops messages for a subscriber whose queue is full (the bridge,
// when it falls behind) and says so only in $SYS publish/dropped, which the bridge's own
// `dropped` counter cannot see. The bridge's stats carry the rate and the last minute's rise.
import type { StatsMessage } from '../types'
import { isNum } from './format'

export interface BrokerLoss {
  dropping: boolean
  perSecond: number | null
  lastMinute: number | null
  total: number | null
}

export function brokerLoss(stats: StatsMessage | null | undefined): BrokerLoss {
  const data = stats?.data ?? {}
  const rate = data.rates?.publish_dropped_per_s
  const perSecond = isNum(rate) ? rate : null
  const lastMinute = isNum(data.publish_dropped_recent) ? data.publish_dropped_recent : null
  const total = isNum(data.publish_dropped) ? data.publish_dropped : null
  return { dropping: (perSecond ?? 0) > 0 || (lastMinute ?? 0) > 0, perSecond, lastMinute, total }
}
