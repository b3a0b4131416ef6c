// The two pieces of RFC 9420's TLS presentation language (section 2.1.2) the client encodes
// itself: variable-length-integer length prefixes and `opaque x<V>` vectors. Pure.

/** The largest length a varint holds (30 bits). */
const MAX_VARINT = 0x3fffffff;

/** 1, 2 or 4 bytes; the top two bits of the first byte give the length. */
export function encodeVarint(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VARINT) throw new RangeError(`length ${value} does not fit an MLS varint`);
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  return Uint8Array.of(0x80 | (value >>> 24), (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
}

/** `[value, bytes read]`, or undefined for a truncated, reserved-prefix (0b11) or non-minimal varint. */
export function decodeVarint(bytes: Uint8Array, offset: number): [number, number] | undefined {
  const first = bytes[offset];
  if (first === undefined) return undefined;
  const prefix = first >> 6;
  if (prefix === 3) return undefined;
  const length = 1 << prefix;
  if (offset + length > bytes.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + (bytes[offset + i] as number);
  // Section 2.1.2: a length MUST be encoded in the fewest bytes that hold it.
  const minimal = length === 1 || (length === 2 && value >= 0x40) || (length === 4 && value >= 0x4000);
  return minimal ? [value, length] : undefined;
}

/** `opaque x<V>`: the varint length, then the bytes. */
export function encodeOpaque(bytes: Uint8Array): Uint8Array {
  return concatBytes([encodeVarint(bytes.length), bytes]);
}

/** Reads `opaque x<V>` at `offset`: `[bytes, offset after it]`, or undefined if it does not fit. */
export function decodeOpaque(bytes: Uint8Array, offset: number): [Uint8Array, number] | undefined {
  const header = decodeVarint(bytes, offset);
  if (!header) return undefined;
  const [length, headerLength] = header;
  const start = offset + headerLength;
  if (start + length > bytes.length) return undefined;
  return [bytes.slice(start, start + length), start + length];
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}
