// Sparkplug B payloads (the Eclipse Tahu `sparkplug_b.proto` schema, proto2) decoded to plain values.
import {
  DecodeError,
  bool,
  bytes,
  fields,
  float32,
  float64,
  i64,
  repeatedU32,
  str,
  u32,
  u64,
  type Field,
} from './protobufReader'
import { bytesToHex } from '../payload'

/** Tahu's DataType enum (Sparkplug 3.0 adds the array types from 22). */
export const DATA_TYPES = [
  'Unknown', 'Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Float', 'Double',
  'Boolean', 'String', 'DateTime', 'Text', 'UUID', 'DataSet', 'Bytes', 'File', 'Template', 'PropertySet',
  'PropertySetList', 'Int8Array', 'Int16Array', 'Int32Array', 'Int64Array', 'UInt8Array', 'UInt16Array',
  'UInt32Array', 'UInt64Array', 'FloatArray', 'DoubleArray', 'BooleanArray', 'StringArray', 'DateTimeArray',
] as const

type Value = unknown
type Obj = Record<string, Value>

function typeName(n: number): string {
  return DATA_TYPES[n] ?? `Unknown(${n})`
}

/** Sparkplug puts Int8/16/32 in a uint32 as two's complement, and Int64 in a uint64. */
function intValue(raw: number, datatype: number | undefined): number {
  return datatype === 1 || datatype === 2 || datatype === 3 ? raw | 0 : raw
}

function longValue(f: Field, datatype: number | undefined, what: string): number | string {
  if (datatype === 4) return i64(f.varint as bigint)
  return u64(f, what)
}

/** The Sparkplug 3.0 array types, packed little-endian into bytes_value. */
function arrayValue(b: Uint8Array, datatype: number): Value[] | null {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const sizes: Record<number, [number, (o: number) => Value]> = {
    22: [1, (o) => view.getInt8(o)],
    23: [2, (o) => view.getInt16(o, true)],
    24: [4, (o) => view.getInt32(o, true)],
    25: [8, (o) => i64(view.getBigUint64(o, true))],
    26: [1, (o) => view.getUint8(o)],
    27: [2, (o) => view.getUint16(o, true)],
    28: [4, (o) => view.getUint32(o, true)],
    29: [8, (o) => u64({ number: 0, wire: 0, varint: view.getBigUint64(o, true), at: 0 }, 'value')],
    30: [4, (o) => view.getFloat32(o, true)],
    31: [8, (o) => view.getFloat64(o, true)],
    34: [8, (o) => Number(view.getBigUint64(o, true))],
  }
  if (datatype === 33) {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(b)
    return text.split('\u0000').slice(0, text.endsWith('\u0000') ? -1 : undefined)
  }
  const spec = sizes[datatype]
  if (!spec) return null
  const [size, read] = spec
  if (b.length % size !== 0) throw new DecodeError(`${typeName(datatype)} value is ${b.length} bytes, not a multiple of ${size}`)
  const out: Value[] = []
  for (let o = 0; o < b.length; o += size) out.push(read(o))
  return out
}

function propertyValue(buf: Uint8Array): Obj {
  const out: Obj = {}
  let type: number | undefined
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1: type = u32(f, 'PropertyValue.type'); out.type = typeName(type); break
      case 2: out.is_null = bool(f, 'PropertyValue.is_null'); break
      case 3: out.value = intValue(u32(f, 'PropertyValue.int_value'), type); break
      case 4: out.value = longValue(f, type, 'PropertyValue.long_value'); break
      case 5: out.value = float32(f, 'PropertyValue.float_value'); break
      case 6: out.value = float64(f, 'PropertyValue.double_value'); break
      case 7: out.value = bool(f, 'PropertyValue.boolean_value'); break
      case 8: out.value = str(f, 'PropertyValue.string_value'); break
      case 9: out.value = propertySet(bytes(f, 'PropertyValue.propertyset_value')); break
      case 10: out.value = fields(bytes(f, 'PropertyValue.propertysets_value')).map((g) => propertySet(bytes(g, 'PropertySetList.propertyset'))); break
      default: break // extensions and unknown fields are skipped, as protobuf readers do
    }
  }
  return out
}

function propertySet(buf: Uint8Array): Obj {
  const keys: string[] = []
  const values: Obj[] = []
  for (const f of fields(buf)) {
    if (f.number === 1) keys.push(str(f, 'PropertySet.keys'))
    else if (f.number === 2) values.push(propertyValue(bytes(f, 'PropertySet.values')))
  }
  const out: Obj = {}
  keys.forEach((k, i) => (out[k] = values[i] ?? null))
  return out
}

function metaData(buf: Uint8Array): Obj {
  const names: Record<number, [string, 'bool' | 'str' | 'u64']> = {
    1: ['is_multi_part', 'bool'], 2: ['content_type', 'str'], 3: ['size', 'u64'], 4: ['seq', 'u64'],
    5: ['file_name', 'str'], 6: ['file_type', 'str'], 7: ['md5', 'str'], 8: ['description', 'str'],
  }
  const out: Obj = {}
  for (const f of fields(buf)) {
    const spec = names[f.number]
    if (!spec) continue
    const [name, kind] = spec
    out[name] = kind === 'bool' ? bool(f, `MetaData.${name}`) : kind === 'str' ? str(f, `MetaData.${name}`) : u64(f, `MetaData.${name}`)
  }
  return out
}

function dataSetValue(buf: Uint8Array, type: number | undefined): Value {
  let value: Value = null
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1: value = intValue(u32(f, 'DataSetValue.int_value'), type); break
      case 2: value = longValue(f, type, 'DataSetValue.long_value'); break
      case 3: value = float32(f, 'DataSetValue.float_value'); break
      case 4: value = float64(f, 'DataSetValue.double_value'); break
      case 5: value = bool(f, 'DataSetValue.boolean_value'); break
      case 6: value = str(f, 'DataSetValue.string_value'); break
      default: break
    }
  }
  return value
}

function dataSet(buf: Uint8Array): Obj {
  const columns: string[] = []
  const types: number[] = []
  const rows: Uint8Array[] = []
  const out: Obj = {}
  for (const f of fields(buf)) {
    if (f.number === 1) out.num_of_columns = u64(f, 'DataSet.num_of_columns')
    else if (f.number === 2) columns.push(str(f, 'DataSet.columns'))
    else if (f.number === 3) types.push(...repeatedU32(f, 'DataSet.types'))
    else if (f.number === 4) rows.push(bytes(f, 'DataSet.rows'))
  }
  out.columns = columns
  out.types = types.map(typeName)
  out.rows = rows.map((row) =>
    fields(row)
      .filter((f) => f.number === 1)
      .map((f, i) => dataSetValue(bytes(f, 'Row.elements'), types[i])),
  )
  return out
}

function template(buf: Uint8Array): Obj {
  const out: Obj = {}
  const metrics: Obj[] = []
  const parameters: Obj[] = []
  for (const f of fields(buf)) {
    if (f.number === 1) out.version = str(f, 'Template.version')
    else if (f.number === 2) metrics.push(metric(bytes(f, 'Template.metrics')))
    else if (f.number === 3) parameters.push(parameter(bytes(f, 'Template.parameters')))
    else if (f.number === 4) out.template_ref = str(f, 'Template.template_ref')
    else if (f.number === 5) out.is_definition = bool(f, 'Template.is_definition')
  }
  out.metrics = metrics
  if (parameters.length) out.parameters = parameters
  return out
}

function parameter(buf: Uint8Array): Obj {
  const out: Obj = {}
  let type: number | undefined
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1: out.name = str(f, 'Parameter.name'); break
      case 2: type = u32(f, 'Parameter.type'); out.type = typeName(type); break
      case 3: out.value = intValue(u32(f, 'Parameter.int_value'), type); break
      case 4: out.value = longValue(f, type, 'Parameter.long_value'); break
      case 5: out.value = float32(f, 'Parameter.float_value'); break
      case 6: out.value = float64(f, 'Parameter.double_value'); break
      case 7: out.value = bool(f, 'Parameter.boolean_value'); break
      case 8: out.value = str(f, 'Parameter.string_value'); break
      default: break
    }
  }
  return out
}

function metric(buf: Uint8Array): Obj {
  const out: Obj = {}
  let datatype: number | undefined
  const valueFields: Field[] = []
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1: out.name = str(f, 'Metric.name'); break
      case 2: out.alias = u64(f, 'Metric.alias'); break
      case 3: out.timestamp = u64(f, 'Metric.timestamp'); break
      case 4: datatype = u32(f, 'Metric.datatype'); break
      case 5: out.is_historical = bool(f, 'Metric.is_historical'); break
      case 6: out.is_transient = bool(f, 'Metric.is_transient'); break
      case 7: out.is_null = bool(f, 'Metric.is_null'); break
      case 8: out.metadata = metaData(bytes(f, 'Metric.metadata')); break
      case 9: out.properties = propertySet(bytes(f, 'Metric.properties')); break
      default: if (f.number >= 10 && f.number <= 19) valueFields.push(f)
    }
  }
  if (datatype !== undefined) out.datatype = typeName(datatype)
  // The value is read after the datatype, which may come later on the wire and decides its sign.
  for (const f of valueFields) {
    switch (f.number) {
      case 10: out.value = intValue(u32(f, 'Metric.int_value'), datatype); break
      case 11: out.value = longValue(f, datatype, 'Metric.long_value'); break
      case 12: out.value = float32(f, 'Metric.float_value'); break
      case 13: out.value = float64(f, 'Metric.double_value'); break
      case 14: out.value = bool(f, 'Metric.boolean_value'); break
      case 15: out.value = str(f, 'Metric.string_value'); break
      case 16: {
        const b = bytes(f, 'Metric.bytes_value')
        out.value = (datatype !== undefined && arrayValue(b, datatype)) || bytesToHex(b)
        break
      }
      case 17: out.value = dataSet(bytes(f, 'Metric.dataset_value')); break
      case 18: out.value = template(bytes(f, 'Metric.template_value')); break
      default: out.value = '(extension value)'
    }
  }
  return out
}

/** A Sparkplug B payload as a plain object; DecodeError (with the byte offset) when it is not one. */
export function decodeSparkplug(buf: Uint8Array): Obj {
  const out: Obj = {}
  const metrics: Obj[] = []
  for (const f of fields(buf)) {
    switch (f.number) {
      case 1: out.timestamp = u64(f, 'Payload.timestamp'); break
      case 2: metrics.push(metric(bytes(f, 'Payload.metrics'))); break
      case 3: out.seq = u64(f, 'Payload.seq'); break
      case 4: out.uuid = str(f, 'Payload.uuid'); break
      case 5: out.body = bytesToHex(bytes(f, 'Payload.body')); break
      default: break
    }
  }
  out.metrics = metrics
  return out
}

/** Sparkplug B topics carry protobuf, except the host application's STATE messages (JSON). */
export function isSparkplugTopic(topic: string): boolean {
  return topic.startsWith('spBv1.0/') && !topic.startsWith('spBv1.0/STATE/')
}
