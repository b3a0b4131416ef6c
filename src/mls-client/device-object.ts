// The LM device object (LM draft "Device Info Publishing"; Bobbin's MLS wire contract section 2):
// user, device, algorithms and the MLS credential, signed with the device's MLS signature key so
// that any server or client can check the credential belongs to the key that signs the leaf.
import type { CiphersuiteImpl } from "ts-mls";
import { decodeBase64, encodeBase64 } from "../core/base64.js";
import type { JsonObject } from "../core/json.js";
import { signedBytesOf } from "../core/signing.js";
import { CREDENTIAL_ALGORITHM, ROOM_ALGORITHM } from "./algorithms.js";
import { decodeDeviceIdentity, encodeDeviceIdentity, type DeviceIdentity } from "./identity.js";

export interface UnsignedDeviceObject extends JsonObject {
  user_id: string;
  device_id: string;
  algorithms: string[];
  keys: Record<string, string>;
}

export interface DeviceObject extends UnsignedDeviceObject {
  signatures: Record<string, Record<string, string>>;
}

/** `m.mls.v1.credential.ed25519:<device ID>`. */
export function credentialKeyId(deviceId: string): string {
  return `${CREDENTIAL_ALGORITHM}:${deviceId}`;
}

/** The unsigned device object of `identity`. */
export function unsignedDeviceObject(identity: DeviceIdentity): UnsignedDeviceObject {
  return {
    user_id: identity.userId,
    device_id: identity.deviceId,
    algorithms: [ROOM_ALGORITHM],
    keys: { [credentialKeyId(identity.deviceId)]: encodeBase64(encodeDeviceIdentity(identity)) },
  };
}

/**
 * The device object with its Matrix JSON signature (canonical JSON without `signatures` and
 * `unsigned`, Ed25519) by the MLS signature private key `signKey`, under the credential key ID.
 */
export async function signDeviceObject(identity: DeviceIdentity, signKey: Uint8Array, cs: CiphersuiteImpl): Promise<DeviceObject> {
  const unsigned = unsignedDeviceObject(identity);
  // Only ASCII keys: both canonical key orders agree.
  const signature = await cs.signature.sign(signKey, signedBytesOf(unsigned, "utf16"));
  return { ...unsigned, signatures: { [identity.userId]: { [credentialKeyId(identity.deviceId)]: encodeBase64(signature) } } };
}

/**
 * Checks a device object from `keys/query`: it names `userId`/`deviceId`, its credential key
 * decodes to the same user and device, and it carries a valid signature by that credential's
 * signature key. Returns the identity, or undefined.
 */
export async function verifyDeviceObject(object: unknown, userId: string, deviceId: string, cs: CiphersuiteImpl): Promise<DeviceIdentity | undefined> {
  if (typeof object !== "object" || object === null) return undefined;
  const candidate = object as Partial<DeviceObject>;
  if (candidate.user_id !== userId || candidate.device_id !== deviceId) return undefined;
  const keyId = credentialKeyId(deviceId);
  const encodedIdentity = candidate.keys?.[keyId];
  const encodedSignature = candidate.signatures?.[userId]?.[keyId];
  if (typeof encodedIdentity !== "string" || typeof encodedSignature !== "string") return undefined;
  const identityBytes = decodeBase64(encodedIdentity);
  const signature = decodeBase64(encodedSignature);
  const identity = identityBytes && decodeDeviceIdentity(identityBytes);
  if (!identity || !signature || identity.userId !== userId || identity.deviceId !== deviceId) return undefined;
  let signed: Uint8Array;
  try {
    signed = signedBytesOf(object as JsonObject, "utf16");
  } catch {
    return undefined;
  }
  return (await cs.signature.verify(identity.signatureKey, signed, signature).catch(() => false)) ? identity : undefined;
}
