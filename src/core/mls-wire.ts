// The names and the credential encoding of Bobbin's encrypted rooms (LM draft "MLS Considerations",
// "Device Credentials", "Key Packages"; docs/encrypted-rooms.md), shared by the server's MLS overlay
// and the reference client: the pieces of RFC 9420's TLS presentation language (section 2.1.2) they
// encode themselves, and the device credential's identity. Pure.
//
// One ciphersuite: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 section 17.1, id 1).

/** `m.room.create` content `encryption.algorithm`, and `m.room.encrypted` `algorithm`. */
export const ROOM_ALGORITHM = "m.mls.v1.dhkemx25519-aes128gcm-sha256-ed25519";
/** The algorithm part of an uploaded KeyPackage's key ID: `<KEY_PACKAGE_ALGORITHM>:<key version>`. */
export const KEY_PACKAGE_ALGORITHM = "m.mls.v1.key_package.dhkemx25519-aes128gcm-sha256-ed25519";
/** The algorithm part of a device object's credential key ID: `<CREDENTIAL_ALGORITHM>:<device ID>`. */
export const CREDENTIAL_ALGORITHM = "m.mls.v1.credential.ed25519";
/** `algorithm` of the to-device message carrying a Welcome. */
export const WELCOME_ALGORITHM = "m.mls.v1.welcome.dhkemx25519-aes128gcm-sha256-ed25519";
export const CIPHERSUITE_NAME = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

export const COMMIT_EVENT_TYPE = "m.mls.commit";
export const ENCRYPTED_EVENT_TYPE = "m.room.encrypted";

/** Bobbin's errcode for a commit that lost its epoch (contract section 5). */
export const EPOCH_CONFLICT_ERRCODE = "ORG.BOBBIN.MLS_EPOCH_CONFLICT";

/** Bobbin's own Client-Server endpoints (the stapled commit, the stored GroupInfo, departed devices). */
export const MLS_CLIENT_PREFIX = "/_matrix/client/unstable/org.bobbin.mls";
/** `/sync` field `rooms.join[roomId][...]`: devices of departed users still in the group. */
export const DEPARTED_DEVICES_SYNC_FIELD = "org.bobbin.mls.departed_devices";

/** The largest length a varint holds (30 bits). */
const MAX_VARINT = 0x3fffffff;

/** RFC 9420 section 2.1.2 variable-length integer: 1, 2 or 4 bytes; the top two bits of the first byte give the length. */
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

/** What a device credential names: the draft's `user_id`, `device_id` and the leaf's signature key. */
export interface DeviceIdentity {
  readonly userId: string;
  readonly deviceId: string;
  /** The leaf's 32-byte Ed25519 MLS signature public key. */
  readonly signatureKey: Uint8Array;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** `opaque user_id<V>; opaque device_id<V>; opaque signature_key<V>` (contract section 2). */
export function encodeDeviceIdentity(identity: DeviceIdentity): Uint8Array {
  return concatBytes([encodeOpaque(utf8.encode(identity.userId)), encodeOpaque(utf8.encode(identity.deviceId)), encodeOpaque(identity.signatureKey)]);
}

/** The identity, or undefined unless the bytes are exactly the three fields (valid UTF-8, nothing after). */
export function decodeDeviceIdentity(bytes: Uint8Array): DeviceIdentity | undefined {
  const fields: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < 3; i++) {
    const field = decodeOpaque(bytes, offset);
    if (!field) return undefined;
    fields.push(field[0]);
    offset = field[1];
  }
  if (offset !== bytes.length) return undefined;
  try {
    return { userId: strictUtf8.decode(fields[0]), deviceId: strictUtf8.decode(fields[1]), signatureKey: fields[2] as Uint8Array };
  } catch {
    return undefined;
  }
}

/** MLS group ID of a room: the UTF-8 bytes of its room ID (contract section 1). */
export function groupIdOf(roomId: string): Uint8Array {
  return utf8.encode(roomId);
}
