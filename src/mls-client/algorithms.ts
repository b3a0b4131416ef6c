// The names Bobbin's encrypted rooms use on the wire (LM draft "MLS Considerations", "Device
// Credentials", "Key Packages"; Bobbin's MLS wire contract). One ciphersuite only:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 section 17.1, id 1).
import { getCiphersuiteFromName, getCiphersuiteImpl, type CiphersuiteImpl, type CiphersuiteName } from "ts-mls";

export const CIPHERSUITE_NAME: CiphersuiteName = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

/** `m.room.create` content `encryption.algorithm` and `m.room.encrypted` `algorithm`. */
export const ROOM_ALGORITHM = "m.mls.v1.dhkemx25519-aes128gcm-sha256-ed25519";
/** Algorithm part of the key ID of an uploaded KeyPackage: `<KEY_PACKAGE_ALGORITHM>:<key version>`. */
export const KEY_PACKAGE_ALGORITHM = "m.mls.v1.key_package.dhkemx25519-aes128gcm-sha256-ed25519";
/** Algorithm part of the device object's credential key ID: `<CREDENTIAL_ALGORITHM>:<device ID>`. */
export const CREDENTIAL_ALGORITHM = "m.mls.v1.credential.ed25519";
/** `algorithm` of the to-device message that carries a Welcome. */
export const WELCOME_ALGORITHM = "m.mls.v1.welcome.dhkemx25519-aes128gcm-sha256-ed25519";

export const COMMIT_EVENT_TYPE = "m.mls.commit";
export const ENCRYPTED_EVENT_TYPE = "m.room.encrypted";

/** Bobbin's own Client-Server endpoints (the stapled commit, the stored GroupInfo, departed devices). */
export const MLS_CLIENT_PREFIX = "/_matrix/client/unstable/org.bobbin.mls";
/** The 409 errcode of a commit that lost its epoch to another one. */
export const EPOCH_CONFLICT_ERRCODE = "ORG.BOBBIN.MLS_EPOCH_CONFLICT";
/** `/sync` field `rooms.join[roomId][...]`: devices of departed users still in the group. */
export const DEPARTED_DEVICES_SYNC_FIELD = "org.bobbin.mls.departed_devices";

/** The ciphersuite implementation (WebCrypto-backed; Node 20 has it). */
export function loadCiphersuite(): Promise<CiphersuiteImpl> {
  return getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE_NAME));
}
