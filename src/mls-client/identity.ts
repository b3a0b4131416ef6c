// A device's MLS identity: who a leaf of the group is (LM draft "Device Credentials"; Bobbin's MLS
// wire contract section 2). The BasicCredential's identity is the TLS encoding (RFC 9420 section
// 2.1.2, variable-length-integer length prefixes) of
//   opaque user_id<V>; opaque device_id<V>; opaque signature_key<V>;
// so a credential names exactly one user and device and is bound to the leaf's signature key.
import type { AuthenticationService, Credential } from "ts-mls";
import { bytesEqual, decodeDeviceIdentity, encodeDeviceIdentity, type DeviceIdentity } from "../core/mls-wire.js";

export { decodeDeviceIdentity, encodeDeviceIdentity, type DeviceIdentity };

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
