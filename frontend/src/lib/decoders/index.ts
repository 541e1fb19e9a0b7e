// Binary payload decoders (MessagePack, CBOR, Sparkplug B), run in the browser on the payload's bytes.
// The result is plain text for Vue's text interpolation: nothing from a payload is ever markup or code.
import { decode as decodeMsgpack, ExtData } from '@msgpack/msgpack'
import { decode as decodeCbor } from 'cborg'
import type { MqttMessage } from '../../types'
import { bytesToHex, payloadBytes } from '../payload'
import { decodeSparkplug, isSparkplugTopic } from './sparkplug'

export type DecoderId = 'msgpack' | 'cbor' | 'sparkplug'
/** 'auto' decodes Sparkplug topics only; 'none' always shows the raw payload. */
export type DecoderChoice = 'auto' | 'none' | DecoderId

export const DECODERS: { id: DecoderChoice; label: string }[] = [
  { id: 'auto', label: 'Auto (Sparkplug topics)' },
  { id: 'none', label: 'None (raw)' },
  { id: 'msgpack', label: 'MessagePack' },
  { id: 'cbor', label: 'CBOR' },
  { id: 'sparkplug', label: 'Sparkplug B' },
]

export const DECODER_NAMES: Record<DecoderId, string> = {
  msgpack: 'MessagePack',
  cbor: 'CBOR',
  sparkplug: 'Sparkplug B',
}

export type Decoded =
  | { ok: true; decoder: DecoderId; value: unknown; text: string }
  | { ok: false; decoder: DecoderId | null; error: string }

const MAX_DEPTH = 64

/** Decoder output as plain JSON values: bigints, bytes, Maps, Dates and extension data made readable. */
export function toPlain(value: unknown, depth = 0): unknown {
  if (depth > MAX_DEPTH) return '(nested too deeply)'
  if (value === undefined) return null
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString()
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value)
  if (value === null || typeof value !== 'object') return value
  if (value instanceof Uint8Array) return `bytes(${value.length}): ${bytesToHex(value, 256)}`
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString()
  if (value instanceof ExtData) return { extension_type: value.type, data: toPlain(value.data, depth + 1) }
  if (Array.isArray(value)) return value.map((v) => toPlain(v, depth + 1))
  const out: Record<string, unknown> = {}
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value)
  for (const [k, v] of entries) {
    const key = typeof k === 'string' ? k : JSON.stringify(toPlain(k, depth + 1))
    // Object.defineProperty: a key named "__proto__" stays an ordinary key.
    Object.defineProperty(out, key, { value: toPlain(v, depth + 1), enumerable: true, writable: true, configurable: true })
  }
  return out
}

function run(decoder: DecoderId, bytes: Uint8Array): unknown {
  switch (decoder) {
    case 'msgpack':
      return decodeMsgpack(bytes, { useBigInt64: true })
    case 'cbor':
      return decodeCbor(bytes, { useMaps: true })
    case 'sparkplug':
      return decodeSparkplug(bytes)
  }
}

/** The decoder a message gets under a choice; null when it is shown raw. */
export function decoderFor(msg: Pick<MqttMessage, 'topic'>, choice: DecoderChoice): DecoderId | null {
  if (choice === 'none') return null
  if (choice === 'auto') return isSparkplugTopic(String(msg.topic ?? '')) ? 'sparkplug' : null
  return choice
}

/**
 * Decode a message's payload; null when it is to be shown raw (no decoder applies). A truncated payload
 * is never decoded (its end is missing), and a failure says why, so the raw bytes can be shown with it.
 */
export function decodeMessage(
  msg: Pick<MqttMessage, 'topic' | 'payload' | 'encoding' | 'truncated'>,
  choice: DecoderChoice,
  pretty = true,
): Decoded | null {
  const decoder = decoderFor(msg, choice)
  if (!decoder) return null
  if (msg.truncated) return { ok: false, decoder, error: 'the payload was truncated by the bridge, so it is shown raw' }
  const bytes = payloadBytes(msg)
  if (!bytes) return { ok: false, decoder, error: 'the payload is not valid base64' }
  if (bytes.length === 0) return { ok: false, decoder, error: 'the payload is empty' }
  try {
    const value = toPlain(run(decoder, bytes))
    return { ok: true, decoder, value, text: pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value) }
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e)
    return { ok: false, decoder, error: `not ${DECODER_NAMES[decoder]}: ${reason}` }
  }
}

/** One-line preview for list rows: the decoded value when a decoder applies and succeeds, else null. */
export function decodedPreview(
  msg: Pick<MqttMessage, 'topic' | 'payload' | 'encoding' | 'truncated'>,
  choice: DecoderChoice,
): { text: string; note: string } | null {
  const d = decodeMessage(msg, choice, false)
  return d && d.ok ? { text: d.text, note: DECODER_NAMES[d.decoder] } : null
}
