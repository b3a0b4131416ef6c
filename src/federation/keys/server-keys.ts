// Our own key response, `GET /_matrix/key/v2/server` (LM draft "Retrieving Server Keys",
// "Validity"; Matrix Server-Server API "Publishing Keys"). Pure: the caller passes the clock.
import { encodeBase64 } from "../../core/base64.js";
import type { JsonObject } from "../../core/json.js";
import { signJson, type SigningKey } from "../../core/signing.js";

/** "Servers SHOULD use a timestamp approximately 12 hours into the future" (LM draft "Validity"). */
export const OWN_KEYS_VALIDITY_MS = 12 * 60 * 60 * 1000;

/** A key the server signed with before, published under `old_verify_keys`. */
export interface OldVerifyKey {
  /** `ed25519:<version>` */
  readonly keyId: string;
  readonly publicKey: Uint8Array;
  /** When the server stopped signing with it (ms since the epoch). */
  readonly expiredTs: number;
}

export interface OwnKeys {
  readonly serverName: string;
  readonly signingKey: SigningKey;
  readonly oldKeys: readonly OldVerifyKey[];
}

/**
 * The signed key response: the current key under `verify_keys`, old keys under
 * `old_verify_keys` (an old key with the current key's ID is left out: the current key wins),
 * `valid_until_ts` = now + 12 h, and `m.linearized: true` (DESIGN.md "peers' dialect").
 * Signed with the current key; LM canonical JSON (UTF-16 key order).
 */
export function buildServerKeyResponse(own: OwnKeys, now: number, validityMs: number = OWN_KEYS_VALIDITY_MS): JsonObject {
  const oldVerifyKeys: JsonObject = {};
  for (const old of own.oldKeys) {
    if (old.keyId === own.signingKey.keyId) continue;
    oldVerifyKeys[old.keyId] = { key: encodeBase64(old.publicKey), expired_ts: old.expiredTs };
  }
  const response: JsonObject = {
    server_name: own.serverName,
    verify_keys: { [own.signingKey.keyId]: { key: encodeBase64(own.signingKey.signer.publicKey) } },
    old_verify_keys: oldVerifyKeys,
    valid_until_ts: now + validityMs,
    "m.linearized": true,
  };
  return signJson(response, own.serverName, own.signingKey, "utf16");
}
