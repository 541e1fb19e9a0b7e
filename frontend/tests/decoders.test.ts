// Decoders on fixed sample payloads. The bytes below come from independent encoders, not from the
// code under test: Sparkplug from protobufjs over Tahu's field numbers, MessagePack from
// @msgpack/msgpack's encoder, CBOR from cborg's encoder (each run once; the hex is pasted here).
import { afterEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import PayloadView from '../src/components/PayloadView.vue'
import MessageRow from '../src/components/MessageRow.vue'
import { decodeMessage, decoderFor, toPlain } from '../src/lib/decoders'
import { decodeSparkplug } from '../src/lib/decoders/sparkplug'
import { bytesToBase64 } from '../src/lib/payload'
import { decoderChoice } from '../src/stores/decoder'
import type { MqttMessage } from '../src/types'

const SPARKPLUG_HEX =
  '08fbd095ffbc3112230a144e6f646520436f6e74726f6c2f52656269727468100118e4d095ffbc31200b7000121a0a0b74656d70657261747572651002200a69000000000080354012100a066f6666736574200350fbffffff0f12160a07636f756e746572200458ffffffffffffffffff01122d0a056c6162656c200c4a0f0a04756e69741207080c4203c2b0437a113c623e6e6f74206d61726b75703c2f623e12230a057461626c6520108a011708021201611201621803180c22090a0208010a0332017812061009200938011807'
// {temp: 21.5, ok: true, list: [1, -2, 'three'], big: 2n ** 63n, nested: {'<img>': null}}
const MSGPACK_HEX =
  '85a474656d70cb4035800000000000a26f6bc3a46c6973749301fea57468726565a3626967cf8000000000000000a66e657374656481a53c696d673ec0'
// {ok: true, list: [1, -2, 'three'], temp: 21.5, bytes: h'0102ff'}
const CBOR_HEX = 'a4626f6bf5646c6973748301216574687265656474656d70f94d60656279746573430102ff'

function hex(h: string): Uint8Array {
  return new Uint8Array(h.match(/../g)!.map((b) => parseInt(b, 16)))
}

function binary(topic: string, h: string, extra: Partial<MqttMessage> = {}): MqttMessage {
  return { topic, payload: bytesToBase64(hex(h)), encoding: 'base64', qos: 0, retain: false, timestamp: 1_700_000_000, ...extra }
}

describe('Sparkplug B', () => {
  it('decodes the Tahu payload: metrics, datatypes, signed ints, 64-bit values, properties, datasets', () => {
    const p = decodeSparkplug(hex(SPARKPLUG_HEX)) as { timestamp: number; seq: number; metrics: Record<string, unknown>[] }
    expect(p.timestamp).toBe(1700000000123)
    expect(p.seq).toBe(7)
    expect(p.metrics).toHaveLength(7)
    expect(p.metrics[0]).toEqual({ name: 'Node Control/Rebirth', alias: 1, timestamp: 1700000000100, datatype: 'Boolean', value: false })
    expect(p.metrics[1]).toEqual({ name: 'temperature', alias: 2, datatype: 'Double', value: 21.5 })
    expect(p.metrics[2]).toEqual({ name: 'offset', datatype: 'Int32', value: -5 }) // uint32 two's complement
    expect(p.metrics[3]).toEqual({ name: 'counter', datatype: 'Int64', value: -1 })
    expect(p.metrics[4]).toEqual({
      name: 'label',
      datatype: 'String',
      value: '<b>not markup</b>',
      properties: { unit: { type: 'String', value: '°C' } },
    })
    expect(p.metrics[5].value).toEqual({ num_of_columns: 2, columns: ['a', 'b'], types: ['Int32', 'String'], rows: [[1, 'x']] })
    expect(p.metrics[6]).toEqual({ alias: 9, datatype: 'Float', is_null: true })
  })

  it('is automatic on spBv1.0 topics, but not on STATE (JSON) or elsewhere', () => {
    expect(decoderFor({ topic: 'spBv1.0/plant/DDATA/edge1/dev1' }, 'auto')).toBe('sparkplug')
    expect(decoderFor({ topic: 'spBv1.0/STATE/scada-host' }, 'auto')).toBeNull()
    expect(decoderFor({ topic: 'sensors/a' }, 'auto')).toBeNull()
    expect(decoderFor({ topic: 'spBv1.0/plant/DDATA/edge1' }, 'none')).toBeNull()
    expect(decoderFor({ topic: 'sensors/a' }, 'msgpack')).toBe('msgpack')
  })

  it('a cut-off Sparkplug payload fails with the byte offset, not a half result', () => {
    const d = decodeMessage(binary('spBv1.0/g/NDATA/n', SPARKPLUG_HEX.slice(0, 120)), 'auto')
    expect(d).toMatchObject({ ok: false, decoder: 'sparkplug' })
    expect(d && !d.ok && d.error).toMatch(/^not Sparkplug B: .*byte \d+/)
  })

  it('text on a Sparkplug topic is not protobuf', () => {
    const msg: MqttMessage = { topic: 'spBv1.0/g/NDATA/n', payload: 'hello world', encoding: 'utf-8', timestamp: 1 }
    const d = decodeMessage(msg, 'auto')
    expect(d?.ok).toBe(false)
  })

  it('a varint that never ends and an unknown wire type are refused', () => {
    expect(() => decodeSparkplug(hex('08ffffffffffffffffffff01'))).toThrow(/longer than 10 bytes/)
    expect(() => decodeSparkplug(hex('0f00'))).toThrow(/wire type 7/)
  })
})

describe('MessagePack and CBOR', () => {
  it('decodes MessagePack, keeping 64-bit integers exact and markup as data', () => {
    const d = decodeMessage(binary('any/topic', MSGPACK_HEX), 'msgpack')
    expect(d?.ok).toBe(true)
    if (!d?.ok) return
    expect(d.value).toEqual({ temp: 21.5, ok: true, list: [1, -2, 'three'], big: '9223372036854775808', nested: { '<img>': null } })
    expect(d.text).toContain('"temp": 21.5')
  })

  it('decodes CBOR, byte strings shown as hex', () => {
    const d = decodeMessage(binary('any/topic', CBOR_HEX), 'cbor')
    expect(d).toMatchObject({ ok: true, value: { ok: true, list: [1, -2, 'three'], temp: 21.5, bytes: 'bytes(3): 01 02 ff' } })
  })

  it('malformed input says why', () => {
    const cut = decodeMessage(binary('t', MSGPACK_HEX.slice(0, 30)), 'msgpack')
    expect(cut).toMatchObject({ ok: false, decoder: 'msgpack' })
    expect(cut && !cut.ok && cut.error).toMatch(/^not MessagePack: /)
    const extra = decodeMessage({ topic: 't', payload: 'hello', encoding: 'utf-8' }, 'msgpack')
    expect(extra && !extra.ok && extra.error).toMatch(/^not MessagePack: .*[Ee]xtra/)
    const badCbor = decodeMessage(binary('t', 'ff00'), 'cbor')
    expect(badCbor && !badCbor.ok && badCbor.error).toMatch(/^not CBOR: /)
    const empty = decodeMessage({ topic: 't', payload: '', encoding: 'utf-8' }, 'cbor')
    expect(empty).toEqual({ ok: false, decoder: 'cbor', error: 'the payload is empty' })
  })

  it('a truncated payload is never decoded', () => {
    const d = decodeMessage(binary('spBv1.0/g/NDATA/n', SPARKPLUG_HEX, { truncated: true, size: 5_000_000 }), 'auto')
    expect(d).toEqual({ ok: false, decoder: 'sparkplug', error: 'the payload was truncated by the bridge, so it is shown raw' })
  })

  it('a "__proto__" key from CBOR stays an ordinary key', () => {
    // {"__proto__": {"polluted": true}} as CBOR
    const bytes = 'a1695f5f70726f746f5f5fa168706f6c6c75746564f5'
    const d = decodeMessage(binary('t', bytes), 'cbor')
    const value = (d?.ok ? d.value : {}) as Record<string, unknown>
    expect(Object.keys(value)).toEqual(['__proto__'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(toPlain(new Map([[1, 'a']]))).toEqual({ 1: 'a' })
  })
})

describe('decoded payloads in the views', () => {
  afterEach(() => (decoderChoice.value = 'auto'))

  it('the detail view shows a Sparkplug payload decoded, raw bytes one click away', async () => {
    const w = mount(PayloadView, { props: { message: binary('spBv1.0/g/DDATA/n/d', SPARKPLUG_HEX), mode: 'text' } })
    const body = () => w.get('[data-testid="payload-view-body"]').text()
    expect(w.get('[data-testid="payload-view-note"]').text()).toBe('decoded as Sparkplug B')
    expect(body()).toContain('"name": "temperature"')
    expect(body()).toContain('"value": "<b>not markup</b>"')
    expect(w.find('b').exists()).toBe(false)
    await w.get('[data-testid="payload-raw-toggle"]').trigger('click')
    expect(body()).not.toContain('temperature",')
    await w.setProps({ mode: 'hex' })
    expect(body()).toMatch(/^00000000 {2}08 fb d0 95/)
  })

  it('a payload the chosen decoder cannot read is shown raw with the error', async () => {
    const msg: MqttMessage = { topic: 'plain/topic', payload: '{"a": 1}', encoding: 'utf-8', timestamp: 1 }
    const w = mount(PayloadView, { props: { message: msg, mode: 'text' } })
    expect(w.find('[data-testid="payload-view-note"]').exists()).toBe(false)
    await w.get('[data-testid="payload-decoder"]').setValue('msgpack')
    expect(w.get('[data-testid="payload-view-note"]').text()).toMatch(/^not MessagePack: /)
    expect(w.get('[data-testid="payload-view-body"]').text()).toBe('{"a": 1}')
    expect(w.find('[data-testid="payload-raw-toggle"]').exists()).toBe(false)
  })

  it('message rows preview the decoded value on Sparkplug topics', () => {
    const w = mount(MessageRow, { props: { message: binary('spBv1.0/g/DDATA/n/d', SPARKPLUG_HEX), mode: 'text' } })
    const cell = w.get('[data-testid="message-payload"]').text()
    expect(cell).toMatch(/^\[Sparkplug B\] \{"timestamp":1700000000123,"seq":7,"metrics":\[\{"name":"Node Control\/Rebirth"/)
  })
})
