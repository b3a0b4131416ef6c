// Content hashes, reference hashes and event IDs (LM draft "Hashes", "Events").
import { hash } from "node:crypto";
import { encodeBase64, encodeBase64Url } from "./base64.js";
import { encodeCanonicalJson } from "./canonical-json.js";
import { isJsonObject, type JsonObject } from "./json.js";
import { redact } from "./redaction.js";
import type { RoomVersionRules } from "./room-versions.js";
import { lpduFormOf } from "./signing.js";

// crypto.hash: one call, no Hash object; ~half the cost of createHash().update().digest() for an
// event's few hundred bytes (node >= 20.12).
function sha256(text: string): Buffer {
  return hash("sha256", text, "buffer");
}

/**
 * Content hash (LM draft "Content Hash Calculation", with mx-differences' removal of `unsigned`):
 * drop `signatures` and `unsigned`; for kind "lpdu" drop `hashes` entirely, for "pdu" keep only
 * `hashes.lpdu` (no `hashes` at all when there is none, as classic Matrix hashes events);
 * canonical JSON; SHA-256; unpadded base64.
 * For an LPDU's hash pass the LPDU itself (or `lpduFormOf(pdu)`): this function does not remove
 * `auth_events` and `prev_events`.
 * Throws MatrixError(M_BAD_JSON) if the event holds a value canonical JSON cannot encode.
 */
export function computeContentHash(event: JsonObject, kind: "pdu" | "lpdu", rules: RoomVersionRules): string {
  const { signatures: _signatures, unsigned: _unsigned, hashes, ...hashed } = event;
  if (kind === "pdu" && isJsonObject(hashes) && hashes.lpdu !== undefined) hashed.hashes = { lpdu: hashes.lpdu };
  return encodeBase64(sha256(encodeCanonicalJson(hashed, rules.canonicalJsonKeyOrder)));
}

export type ContentHashCheck = { ok: true } | { ok: false; reason: string };

/**
 * Receive step 3 for one hash: "pdu" compares `hashes.sha256` with the event's content hash,
 * "lpdu" compares `hashes.lpdu.sha256` with the content hash of `lpduFormOf(event)`, so it works
 * on an LPDU and on a PDU completed from one. Never throws.
 */
export function checkContentHash(event: JsonObject, kind: "pdu" | "lpdu", rules: RoomVersionRules): ContentHashCheck {
  if (!isJsonObject(event)) return { ok: false, reason: "event is not a JSON object" };
  const hashes = event.hashes;
  const holder = kind === "pdu" ? hashes : isJsonObject(hashes) ? hashes.lpdu : undefined;
  const expected = isJsonObject(holder) ? holder.sha256 : undefined;
  if (typeof expected !== "string") return { ok: false, reason: `no ${kind === "pdu" ? "hashes.sha256" : "hashes.lpdu.sha256"}` };
  let actual: string;
  try {
    actual = computeContentHash(kind === "pdu" ? event : lpduFormOf(event), kind, rules);
  } catch (error) {
    return { ok: false, reason: `cannot be encoded as canonical JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  // Compare unpadded forms: a padded hash from a lenient peer names the same bytes.
  return actual === expected.replace(/=+$/, "") ? { ok: true } : { ok: false, reason: `${kind} content hash mismatch` };
}

/** Reference hash: redact, drop `signatures` and `unsigned`, canonical JSON, SHA-256, URL-safe unpadded base64.
 *  Throws MatrixError(M_BAD_JSON) if the redacted event holds a value canonical JSON cannot encode. */
export function computeReferenceHash(event: JsonObject, rules: RoomVersionRules): string {
  const { signatures: _signatures, unsigned: _unsigned, ...hashed } = redact(event, rules.redaction);
  return encodeBase64Url(sha256(encodeCanonicalJson(hashed, rules.canonicalJsonKeyOrder)));
}

/**
 * The event ID from the bytes an event's signature covers: those are exactly the reference hash's
 * input (redacted, without `signatures` and `unsigned`), so a signer computes canonical JSON once.
 */
export function eventIdOfSignedBytes(bytes: Uint8Array): string {
  return `$${encodeBase64Url(hash("sha256", bytes, "buffer"))}`;
}

/** `$` + reference hash. Throws as computeReferenceHash. */
export function computeEventId(event: JsonObject, rules: RoomVersionRules): string {
  return `$${computeReferenceHash(event, rules)}`;
}
