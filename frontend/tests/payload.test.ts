import { describe, expect, it } from 'vitest'
import {
  base64ToBytes,
  bytesToBase64,
  bytesToHex,
  extractNumbers,
  hexDump,
  numericSeries,
  payloadText,
  renderPayload,
} from '../src/lib/payload'

describe('hex and base64', () => {
  it('decodes base64 payloads to their bytes and shows them as hex', () => {
    const msg = { payload: 'AAH/gA==', encoding: 'base64' }
    expect(renderPayload(msg, 'hex', true).text).toBe('00 01 ff 80')
  })

  it('shows UTF-8 payloads as the hex of their UTF-8 bytes', () => {
    expect(renderPayload({ payload: 'Aé€', encoding: 'utf-8' }, 'hex', true).text).toBe('41 c3 a9 e2 82 ac')
  })

  it('round-trips bytes through base64', () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255])
    expect(Array.from(base64ToBytes(bytesToBase64(bytes))!)).toEqual(Array.from(bytes))
  })

  it('accepts unpadded and URL-safe base64, and rejects garbage', () => {
    expect(Array.from(base64ToBytes('_-8')!)).toEqual([0xff, 0xef])
    expect(base64ToBytes('not base64!')).toBeNull()
    expect(base64ToBytes('A')).toBeNull()
    expect(base64ToBytes('')!.length).toBe(0)
  })

  it('summarises long hex in rows', () => {
    const out = bytesToHex(new Uint8Array(200), 96)
    expect(out).toMatch(/… \(\+104 bytes\)$/)
  })

  it('produces a hex dump with offsets and ASCII', () => {
    const dump = hexDump(new TextEncoder().encode('Hello, MQTT world!'))
    expect(dump.split('\n')[0]).toBe('00000000  48 65 6c 6c 6f 2c 20 4d  51 54 54 20 77 6f 72 6c  |Hello, MQTT worl|')
    expect(dump.split('\n')[1]).toMatch(/^00000010  64 21/)
  })

  it('marks invalid base64 instead of failing', () => {
    expect(renderPayload({ payload: '%%%', encoding: 'base64' }, 'hex').note).toBe('invalid base64')
  })

  it('shows text of base64 payloads that are text, and hex for binary ones in rows', () => {
    expect(payloadText({ payload: btoa('hi there'), encoding: 'base64' })).toBe('hi there')
    const row = renderPayload({ payload: 'AAECAw==', encoding: 'base64' }, 'text', true)
    expect(row.text).toBe('00 01 02 03')
    expect(row.note).toBe('binary, 4 bytes')
  })
})

describe('pretty JSON', () => {
  it('indents JSON payloads and leaves other text as it is', () => {
    expect(renderPayload({ payload: '{"a":1,"b":[1,2]}' }, 'json').text).toBe('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}')
    const plain = renderPayload({ payload: 'hello' }, 'json')
    expect(plain.text).toBe('hello')
    expect(plain.note).toMatch(/not JSON/)
  })
})

describe('numbers in payloads', () => {
  it('reads plain numbers', () => {
    expect(extractNumbers('21.5')).toEqual({ value: 21.5 })
    expect(extractNumbers(' -3e2 ')).toEqual({ value: -300 })
    expect(extractNumbers('12 apples')).toBeNull()
    expect(extractNumbers('')).toBeNull()
    expect(extractNumbers('on')).toBeNull()
  })

  it('reads numeric JSON fields by path and ignores the rest', () => {
    expect(extractNumbers('{"temp": 21.5, "unit": "C", "ok": true, "env": {"hum": 40}, "xs": [1, 2]}')).toEqual({
      temp: 21.5,
      'env.hum': 40,
      'xs.0': 1,
      'xs.1': 2,
    })
    expect(extractNumbers('{"name": "x"}')).toBeNull()
    expect(extractNumbers('"42"')).toBeNull()
  })

  it('builds time-ordered series, most frequent fields first', () => {
    const msgs = [
      { timestamp: 3, payload: '{"t": 3, "h": 30}' },
      { timestamp: 1, payload: '{"t": 1}' },
      { timestamp: 2, payload: 'not a number' },
      { timestamp: 2, payload: '{"t": 2, "h": 20}' },
    ]
    const s = numericSeries(msgs)!
    expect(s.x).toEqual([1, 2, 3])
    expect(s.fields.map((f) => f.name)).toEqual(['t', 'h'])
    expect(s.fields[0].values).toEqual([1, 2, 3])
    expect(s.fields[1].values).toEqual([null, 20, 30])
  })

  it('keeps x strictly increasing when timestamps repeat', () => {
    const s = numericSeries([
      { timestamp: 5, payload: '1' },
      { timestamp: 5, payload: '2' },
    ])!
    expect(s.x[1]).toBeGreaterThan(s.x[0])
  })

  it('leaves out timestamps carried inside payloads', () => {
    const s = numericSeries([
      { timestamp: 1_700_000_000, payload: '{"power_w": 700, "ts": 1700000000.1, "seen": 1700000000100, "created_at": 5}' },
      { timestamp: 1_700_000_001, payload: '{"power_w": 710, "ts": 1700000001.1, "seen": 1700000001100, "created_at": 6}' },
    ])!
    expect(s.fields.map((f) => f.name)).toEqual(['power_w'])
  })

  it('gives no series when payloads are not numeric', () => {
    expect(numericSeries([{ timestamp: 1, payload: 'on' }, { timestamp: 2, payload: 'off' }])).toBeNull()
  })
})
