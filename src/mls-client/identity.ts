// A device's MLS identity: who a leaf of the group is (LM draft "Device Credentials"; Bobbin's MLS
// wire contract section 2). The BasicCredential's identity is the TLS encoding (RFC 9420 section
// 2.1.2, variable-length-integer length prefixes) of
//   opaque user_id<V>; opaque device_id<V>; opaque signature_key<V>;
// so a credential names exactly one user and device and is bound to the leaf's signature key.
import type { AuthenticationService, Credential } from "ts-mls";
import { bytesEqual, concatBytes, decodeOpaque, encodeOpaque } from "./tls-codec.js";

export interface DeviceIdentity {
  readonly userId: string;
  readonly deviceId: string;
  /** The leaf's 32-byte Ed25519 MLS signature public key. */
  readonly signatureKey: Uint8Array;
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The credential identity bytes of `identity`. */
export function encodeDeviceIdentity(identity: DeviceIdentity): Uint8Array {
  return concatBytes([encodeOpaque(utf8.encode(identity.userId)), encodeOpaque(utf8.encode(identity.deviceId)), encodeOpaque(identity.signatureKey)]);
}

/** Decodes identity bytes; undefined unless they are exactly the three fields (no trailing bytes, valid UTF-8). */
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

/** A basic credential carrying `identity`. */
export function credentialOf(identity: DeviceIdentity): Credential {
  return { credentialType: "basic", identity: encodeDeviceIdentity(identity) };
}

/** The identity a leaf's credential names, if it is a well-formed Bobbin device credential. */
export function identityOfCredential(credential: Credential): DeviceIdentity | undefined {
  return credential.credentialType === "basic" ? decodeDeviceIdentity(credential.identity) : undefined;
}

/**
 * The check ts-mls runs on every credential it meets (joining, processing commits): the identity
 * decodes and names the signature key of the leaf carrying it (contract section 2). ts-mls's own
 * default accepts anything. That the user actually owns the device is the server's check on
 * upload and on every Add.
 */
export const deviceAuthenticationService: AuthenticationService = {
  async validateCredential(credential: Credential, signaturePublicKey: Uint8Array): Promise<boolean> {
    const identity = identityOfCredential(credential);
    return identity !== undefined && bytesEqual(identity.signatureKey, signaturePublicKey);
  },
};

/** `userId|deviceId`, a map key for a device. */
export function deviceKey(userId: string, deviceId: string): string {
  return `${userId}|${deviceId}`;
}
