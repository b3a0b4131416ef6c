// The names and the credential encoding of Bobbin's encrypted rooms (LM draft "MLS Considerations",
// "Device Credentials", "Key Packages"; Bobbin's MLS wire contract sections 1–3). Pure.
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

/** What a device credential names: the draft's `user_id`, `device_id` and the leaf's signature key. */
export interface DeviceIdentity {
  readonly userId: string;
  readonly deviceId: string;
  /** The leaf's 32-byte Ed25519 MLS signature public key. */
  readonly signatureKey: Uint8Array;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
/** The largest length an RFC 9420 varint holds (30 bits). */
const MAX_VARINT = 0x3fffffff;

/** RFC 9420 section 2.1.2: 1, 2 or 4 bytes, the top two bits of the first byte give the size. */
function encodeVarint(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VARINT) throw new RangeError(`${value} does not fit an MLS varint`);
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  return Uint8Array.of(0x80 | (value >>> 24), (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
}

/** `[value, size]`; undefined when truncated, with the reserved prefix 0b11, or not minimal (section 2.1.2 requires the fewest bytes). */
function decodeVarint(bytes: Uint8Array, offset: number): [number, number] | undefined {
  const first = bytes[offset];
  if (first === undefined) return undefined;
  const prefix = first >> 6;
  if (prefix === 3) return undefined;
  const size = 1 << prefix;
  if (offset + size > bytes.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < size; i++) value = value * 256 + (bytes[offset + i] as number);
  const minimal = size === 1 || (size === 2 && value >= 0x40) || (size === 4 && value >= 0x4000);
  return minimal ? [value, size] : undefined;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** `opaque user_id<V>; opaque device_id<V>; opaque signature_key<V>` (contract section 2). */
export function encodeDeviceIdentity(identity: DeviceIdentity): Uint8Array {
  const fields = [utf8.encode(identity.userId), utf8.encode(identity.deviceId), identity.signatureKey];
  return concat(fields.flatMap((field) => [encodeVarint(field.length), field]));
}

/** The identity, or undefined unless the bytes are exactly the three fields (valid UTF-8, nothing after). */
export function decodeDeviceIdentity(bytes: Uint8Array): DeviceIdentity | undefined {
  const fields: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < 3; i++) {
    const header = decodeVarint(bytes, offset);
    if (!header) return undefined;
    const start = offset + header[1];
    const end = start + header[0];
    if (end > bytes.length) return undefined;
    fields.push(bytes.subarray(start, end));
    offset = end;
  }
  if (offset !== bytes.length) return undefined;
  try {
    return { userId: strictUtf8.decode(fields[0]), deviceId: strictUtf8.decode(fields[1]), signatureKey: (fields[2] as Uint8Array).slice() };
  } catch {
    return undefined;
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** MLS group ID of a room: the UTF-8 bytes of its room ID (contract section 1). */
export function groupIdOf(roomId: string): Uint8Array {
  return utf8.encode(roomId);
}
