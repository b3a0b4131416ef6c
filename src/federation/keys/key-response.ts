// Checking a key response another server published or a notary relayed (LM draft "Retrieving
// Server Keys", "Validity", `GET /_matrix/key/v2/server`; Matrix Server-Server API "Retrieving
// server keys"). Pure: the time of fetch is passed in; outcomes are values.
import { decodeBase64 } from "../../core/base64.js";
import { checkCanonicalNumbers } from "../../core/canonical-json.js";
import type { Ed25519Backend, Ed25519Verifier } from "../../core/ed25519.js";
import { isValidKeyVersion } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { verifyJsonSignatures } from "../../core/signing.js";

/** "the lesser of valid_until_ts and 7 days into the future" (LM draft "Validity"). */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000;

export interface PublishedKey {
  /** `ed25519:<version>` */
  readonly keyId: string;
  /** Unpadded base64, as published. */
  readonly key: string;
  readonly verifier: Ed25519Verifier;
  /** Null for a key under `verify_keys`; set for one under `old_verify_keys`. */
  readonly expiredTs: number | null;
}

export interface CheckedKeyResponse {
  readonly ok: true;
  readonly response: JsonObject;
  /** `verify_keys` first; an ID listed in both places counts as current. Other algorithms are skipped. */
  readonly keys: PublishedKey[];
  /** As published (not capped). */
  readonly validUntilTs: number;
  /** `m.linearized: true` (DESIGN.md "peers' dialect"). */
  readonly linearized: boolean;
}

export type KeyResponseCheck = CheckedKeyResponse | { ok: false; reason: string };

/**
 * Checks that `response` is `serverName`'s key response: well-formed, numbers LM canonical JSON
 * can encode, `server_name` matching, at least one Ed25519 key under `verify_keys`, and signed by
 * `serverName` with every one of its `verify_keys` ("Digital signatures for this object signed
 * using the verify_keys"). Malformed `old_verify_keys` entries are skipped, not fatal: they sign
 * nothing new. Signatures of other servers (a notary's) are not looked at here.
 */
export function checkKeyResponse(response: unknown, serverName: string, backend: Ed25519Backend): KeyResponseCheck {
  if (!isJsonObject(response)) return { ok: false, reason: "key response is not a JSON object" };
  const numbers = checkCanonicalNumbers(response);
  if (!numbers.ok) return { ok: false, reason: `key response: ${numbers.reason}` };
  if (response.server_name !== serverName) {
    return { ok: false, reason: `key response names server ${JSON.stringify(response.server_name)}, expected ${JSON.stringify(serverName)}` };
  }
  const validUntilTs = response.valid_until_ts;
  if (typeof validUntilTs !== "number" || validUntilTs < 0) return { ok: false, reason: "valid_until_ts is missing or not a timestamp" };
  const verifyKeys = response.verify_keys;
  if (!isJsonObject(verifyKeys)) return { ok: false, reason: "verify_keys is missing or not an object" };

  const keys: PublishedKey[] = [];
  const current = new Map<string, Ed25519Verifier>();
  for (const [keyId, entry] of Object.entries(verifyKeys)) {
    if (!keyId.startsWith("ed25519:")) continue;
    const published = publishedKeyOf(keyId, entry, null, backend);
    if (published === undefined) return { ok: false, reason: `verify_keys ${JSON.stringify(keyId)} is not a valid Ed25519 key entry` };
    current.set(keyId, published.verifier);
    keys.push(published);
  }
  if (current.size === 0) return { ok: false, reason: "verify_keys holds no Ed25519 key" };

  const oldVerifyKeys = response.old_verify_keys;
  if (oldVerifyKeys !== undefined && !isJsonObject(oldVerifyKeys)) return { ok: false, reason: "old_verify_keys is not an object" };
  for (const [keyId, entry] of Object.entries(oldVerifyKeys ?? {})) {
    if (!keyId.startsWith("ed25519:") || current.has(keyId) || !isJsonObject(entry)) continue;
    const expiredTs = entry.expired_ts;
    if (typeof expiredTs !== "number" || expiredTs < 0) continue;
    const published = publishedKeyOf(keyId, entry, expiredTs, backend);
    if (published !== undefined) keys.push(published);
  }

  const signatures = response.signatures;
  const ours = isJsonObject(signatures) ? signatures[serverName] : undefined;
  for (const keyId of current.keys()) {
    if (!isJsonObject(ours) || ours[keyId] === undefined) return { ok: false, reason: `key response is not signed by ${serverName}'s key ${keyId}` };
  }
  const signed = verifyJsonSignatures(response, serverName, (entity, keyId) => (entity === serverName ? current.get(keyId) : undefined), "utf16");
  if (!signed.ok) return { ok: false, reason: `key response self-signature: ${signed.reason}` };

  return { ok: true, response, keys, validUntilTs, linearized: response["m.linearized"] === true };
}

/** Checks a notary's signature on a key response it relayed, against the notary's pinned keys. */
export function checkNotarySignature(response: JsonObject, notaryName: string, pinnedKeys: ReadonlyMap<string, Ed25519Verifier>): { ok: true } | { ok: false; reason: string } {
  const signed = verifyJsonSignatures(response, notaryName, (entity, keyId) => (entity === notaryName ? pinnedKeys.get(keyId) : undefined), "utf16");
  return signed.ok ? signed : { ok: false, reason: `notary ${notaryName}: ${signed.reason}` };
}

/** A key's validity as stored: the published `valid_until_ts`, at most 7 days after the fetch. */
export function cappedValidUntil(validUntilTs: number, fetchedTs: number): number {
  return Math.min(validUntilTs, fetchedTs + MAX_KEY_VALIDITY_MS);
}

function publishedKeyOf(keyId: string, entry: unknown, expiredTs: number | null, backend: Ed25519Backend): PublishedKey | undefined {
  if (!isValidKeyVersion(keyId.slice("ed25519:".length)) || !isJsonObject(entry) || typeof entry.key !== "string") return undefined;
  const publicKey = decodeBase64(entry.key);
  const verifier = publicKey && backend.verifierFromPublicKey(publicKey);
  return verifier ? { keyId, key: entry.key, verifier, expiredTs } : undefined;
}
