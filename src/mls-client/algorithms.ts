// The wire names (defined once, in src/core/mls-wire.ts) and the one ciphersuite the client uses:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (RFC 9420 section 17.1, id 1).
import { getCiphersuiteFromName, getCiphersuiteImpl, type CiphersuiteImpl, type CiphersuiteName } from "ts-mls";
import { CIPHERSUITE_NAME as CIPHERSUITE } from "../core/mls-wire.js";

export { COMMIT_EVENT_TYPE, CREDENTIAL_ALGORITHM, DEPARTED_DEVICES_SYNC_FIELD, ENCRYPTED_EVENT_TYPE, EPOCH_CONFLICT_ERRCODE, KEY_PACKAGE_ALGORITHM, MLS_CLIENT_PREFIX, ROOM_ALGORITHM, WELCOME_ALGORITHM } from "../core/mls-wire.js";

export const CIPHERSUITE_NAME: CiphersuiteName = CIPHERSUITE;

/** The ciphersuite implementation (WebCrypto-backed; Node 20 has it). */
export function loadCiphersuite(): Promise<CiphersuiteImpl> {
  return getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE_NAME));
}
