// A minimal Protocol Buffers wire-format reader: enough to walk a message field by field.
// Hand-written because protobufjs compiles its decoders with `new Function`, which the dashboard's
// Content-Security-Policy (no 'unsafe-eval') forbids.

export class DecodeError extends Error {
  override name = 'DecodeError'
}

export const WIRE_VARINT = 0
export const WIRE_FIXED64 = 1
export const WIRE_LENGTH = 2
export const WIRE_FIXED32 = 5

export interface Field {
  number: number
  wire: number
  /** varint: the value (bigint keeps all 64 bits); fixed: the raw bytes view; length: the bytes. */
  varint?: bigint
  bytes?: Uint8Array
  /** The offset of the field's tag, for error messages. */
  at: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

export class Reader {
  pos = 0
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length
  }

  varint(): bigint {
    let result = 0n
    let shift = 0n
    const start = this.pos
    for (;;) {
      if (this.pos >= this.buf.length) throw new DecodeError(`varint at byte ${start} runs past the end`)
      const b = this.buf[this.pos++]
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) break
      shift += 7n
      if (shift > 63n) throw new DecodeError(`varint at byte ${start} is longer than 10 bytes`)
    }
    return BigInt.asUintN(64, result)
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new DecodeError(`field at byte ${this.pos} wants ${n} bytes, only ${this.buf.length - this.pos} left`)
    }
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  field(): Field {
    const at = this.pos
    const tag = this.varint()
    const number = Number(tag >> 3n)
    const wire = Number(tag & 7n)
    if (number === 0) throw new DecodeError(`field number 0 at byte ${at} (not protobuf)`)
    switch (wire) {
      case WIRE_VARINT:
        return { number, wire, varint: this.varint(), at }
      case WIRE_FIXED64:
        return { number, wire, bytes: this.take(8), at }
      case WIRE_LENGTH: {
        const len = this.varint()
        if (len > BigInt(this.buf.length)) throw new DecodeError(`length ${len} at byte ${at} is past the end`)
        return { number, wire, bytes: this.take(Number(len)), at }
      }
      case WIRE_FIXED32:
        return { number, wire, bytes: this.take(4), at }
      default:
        throw new DecodeError(`unsupported wire type ${wire} at byte ${at} (not protobuf, or groups)`)
    }
  }
}

/** Every field of a message, in order. */
export function fields(buf: Uint8Array): Field[] {
  const r = new Reader(buf)
  const out: Field[] = []
  while (!r.done) out.push(r.field())
  return out
}

function expectWire(f: Field, wire: number, what: string): void {
  if (f.wire !== wire) throw new DecodeError(`${what} (field ${f.number}) has wire type ${f.wire} at byte ${f.at}`)
}

/** A uint64 as a number when it fits exactly, otherwise as decimal text. */
export function u64(f: Field, what: string): number | string {
  expectWire(f, WIRE_VARINT, what)
  const v = f.varint as bigint
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()
}

export function i64(v: bigint): number | string {
  const s = BigInt.asIntN(64, v)
  return s <= BigInt(Number.MAX_SAFE_INTEGER) && s >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(s) : s.toString()
}

export function u32(f: Field, what: string): number {
  expectWire(f, WIRE_VARINT, what)
  return Number(BigInt.asUintN(32, f.varint as bigint))
}

export function bool(f: Field, what: string): boolean {
  expectWire(f, WIRE_VARINT, what)
  return f.varint !== 0n
}

export function str(f: Field, what: string): string {
  expectWire(f, WIRE_LENGTH, what)
  try {
    return utf8.decode(f.bytes)
  } catch {
    throw new DecodeError(`${what} (field ${f.number}) at byte ${f.at} is not valid UTF-8`)
  }
}

export function bytes(f: Field, what: string): Uint8Array {
  expectWire(f, WIRE_LENGTH, what)
  return f.bytes as Uint8Array
}

export function float32(f: Field, what: string): number {
  expectWire(f, WIRE_FIXED32, what)
  const b = f.bytes as Uint8Array
  return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true)
}

export function float64(f: Field, what: string): number {
  expectWire(f, WIRE_FIXED64, what)
  const b = f.bytes as Uint8Array
  return new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, true)
}

/** A repeated uint32 that may be packed (one length-delimited run) or not (one varint each). */
export function repeatedU32(f: Field, what: string): number[] {
  if (f.wire === WIRE_VARINT) return [u32(f, what)]
  expectWire(f, WIRE_LENGTH, what)
  const r = new Reader(f.bytes as Uint8Array)
  const out: number[] = []
  while (!r.done) out.push(Number(BigInt.asUintN(32, r.varint())))
  return out
}
