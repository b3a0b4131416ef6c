// Signing and verifying JSON objects and events (LM draft "Signing", "Checking Signatures",
// "Receiving Events/PDUs" step 2, auth rules 1 and 2; Matrix appendix "Signing JSON").
import { decodeBase64, encodeBase64 } from "./base64.js";
import { encodeCanonicalJson } from "./canonical-json.js";
import type { Ed25519Signer, Ed25519Verifier } from "./ed25519.js";
import { serverNameOf } from "./identifiers.js";
import { isJsonObject, type JsonObject } from "./json.js";
import { redact } from "./redaction.js";
import type { KeyOrder, RoomVersionRules } from "./room-versions.js";

/** A server's (or device's) signing key: `ed25519:<version>` and its signer. */
export interface SigningKey {
  readonly keyId: string;
  readonly signer: Ed25519Signer;
}

/** Resolves an already-fetched verify key; nothing in the kernel fetches. */
export type VerifyKeyLookup = (entity: string, keyId: string) => Ed25519Verifier | undefined;

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

const utf8 = new TextEncoder();

/** The bytes a signature covers: canonical JSON of the object without `signatures` and `unsigned`.
 *  Throws MatrixError(M_BAD_JSON) for values canonical JSON cannot encode. */
export function signedBytesOf(object: JsonObject, order: KeyOrder): Uint8Array {
  const { signatures: _signatures, unsigned: _unsigned, ...signed } = object;
  return utf8.encode(encodeCanonicalJson(signed, order));
}

function withSignature<T extends JsonObject>(object: T, entity: string, keyId: string, signature: string): T {
  const existing = isJsonObject(object.signatures) ? object.signatures : {};
  const byEntity = isJsonObject(existing[entity]) ? existing[entity] : {};
  return { ...object, signatures: { ...existing, [entity]: { ...byEntity, [keyId]: signature } } };
}

/** Returns a copy of `object` with `signatures[entity][key.keyId]` set to a signature over its
 *  canonical JSON without `signatures` and `unsigned`.
 *  Throws MatrixError(M_BAD_JSON) if `object` holds a value canonical JSON cannot encode. */
export function signJson<T extends JsonObject>(object: T, entity: string, key: SigningKey, order: KeyOrder): T {
  const signature = encodeBase64(key.signer.sign(signedBytesOf(object, order)));
  return withSignature(object, entity, key.keyId, signature);
}

/**
 * Checks `signatures[entity]`: structurally valid, at least one signature by a key `lookup` knows,
 * and every such known signature verifies (unknown key IDs are ignored). Bad base64 fails.
 * Padded base64 signatures are accepted (the draft's SHOULD; gomatrixserverlib refuses them).
 */
export function verifyJsonSignatures(object: JsonObject, entity: string, lookup: VerifyKeyLookup, order: KeyOrder): SignatureCheck {
  return withoutBytes(verifyJsonSignaturesKeepingBytes(object, entity, lookup, order));
}

/** A successful check and the bytes its signatures covered (see checkEventSignaturesKeepingBytes). */
export type SignatureCheckWithBytes = { ok: true; signedBytes: Uint8Array } | { ok: false; reason: string };

function withoutBytes<T extends SignatureCheckWithBytes>(check: T): SignatureCheck {
  return check.ok ? { ok: true } : check;
}

function verifyJsonSignaturesKeepingBytes(object: JsonObject, entity: string, lookup: VerifyKeyLookup, order: KeyOrder): SignatureCheckWithBytes {
  if (!isJsonObject(object)) return { ok: false, reason: "not a JSON object" };
  const signatures = object.signatures;
  if (signatures === undefined) return { ok: false, reason: "no signatures" };
  if (!isJsonObject(signatures)) return { ok: false, reason: "signatures is not an object" };
  const byEntity = signatures[entity];
  if (byEntity === undefined) return { ok: false, reason: `no signatures by ${entity}` };
  if (!isJsonObject(byEntity)) return { ok: false, reason: `signatures of ${entity} is not an object` };

  const checks: Array<{ keyId: string; verifier: Ed25519Verifier; signature: Uint8Array }> = [];
  for (const [keyId, encoded] of Object.entries(byEntity)) {
    if (typeof encoded !== "string") return { ok: false, reason: `signature ${entity} ${keyId} is not a string` };
    const verifier = lookup(entity, keyId);
    if (verifier === undefined) continue;
    const signature = decodeBase64(encoded);
    if (signature === undefined) return { ok: false, reason: `signature ${entity} ${keyId} is not valid base64` };
    checks.push({ keyId, verifier, signature });
  }
  if (checks.length === 0) return { ok: false, reason: `no signature by a known key of ${entity}` };

  let message: Uint8Array;
  try {
    message = signedBytesOf(object, order);
  } catch (error) {
    return { ok: false, reason: `cannot be encoded as canonical JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  for (const { keyId, verifier, signature } of checks) {
    if (!verifier.verify(message, signature)) return { ok: false, reason: `signature ${entity} ${keyId} does not verify` };
  }
  return { ok: true, signedBytes: message };
}

/** Signs an event: redact with `rules`, then sign as an object; returns the full event with the signature added.
 *  Throws MatrixError(M_BAD_JSON) if the redacted event holds a value canonical JSON cannot encode. */
export function signEvent<T extends JsonObject>(event: T, entity: string, key: SigningKey, rules: RoomVersionRules): T {
  const redacted = redact(event, rules.redaction);
  const signature = encodeBase64(key.signer.sign(signedBytesOf(redacted, rules.canonicalJsonKeyOrder)));
  return withSignature(event, entity, key.keyId, signature);
}

/** Verifies `entity`'s signatures on an event (redacted first), as verifyJsonSignatures. */
export function verifyEventSignatures(event: JsonObject, entity: string, lookup: VerifyKeyLookup, rules: RoomVersionRules): SignatureCheck {
  return withoutBytes(verifyEventSignaturesKeepingBytes(event, entity, lookup, rules));
}

function verifyEventSignaturesKeepingBytes(event: JsonObject, entity: string, lookup: VerifyKeyLookup, rules: RoomVersionRules): SignatureCheckWithBytes {
  if (!isJsonObject(event)) return { ok: false, reason: "event is not a JSON object" };
  return verifyJsonSignaturesKeepingBytes(redact(event, rules.redaction), entity, lookup, rules.canonicalJsonKeyOrder);
}

/**
 * The LPDU a PDU was completed from, as its sender's server signed it: the PDU without
 * `auth_events`, `prev_events` and every hash but `hashes.lpdu` (LM draft "Linearized PDU").
 * Without a `hashes.lpdu` the result has no `hashes` at all.
 */
export function lpduFormOf(pdu: JsonObject): JsonObject {
  const { auth_events: _authEvents, prev_events: _prevEvents, hashes, ...lpdu } = pdu;
  if (isJsonObject(hashes) && hashes.lpdu !== undefined) lpdu.hashes = { lpdu: hashes.lpdu };
  return lpdu;
}

/**
 * The required signatures of an event (LM auth rules 1 and 2; receive step 2): the sender's server
 * (over the LPDU form when `hub_server` is set and is another server) and, when `hub_server` is
 * set, the hub over the whole event. Other signatures are not considered.
 *
 * An event the hub completed from a participant's LPDU carries `hub_server` and the participant's
 * signature over the LPDU; an event created on the hub itself carries no `hub_server` (or names
 * the sender's own server), and one signature by that server covers the whole event.
 */
export function checkEventSignatures(event: JsonObject, lookup: VerifyKeyLookup, rules: RoomVersionRules): SignatureCheck & { rule?: "1" | "2" } {
  const check = checkEventSignaturesKeepingBytes(event, lookup, rules);
  return check.ok ? { ok: true } : check;
}

/**
 * checkEventSignatures, keeping on success the bytes the last signature covered: canonical JSON
 * of the redacted event without `signatures` and `unsigned`, which is exactly the reference
 * hash's input, so a receiver derives the event ID without encoding the event again.
 */
export function checkEventSignaturesKeepingBytes(event: JsonObject, lookup: VerifyKeyLookup, rules: RoomVersionRules): SignatureCheckWithBytes & { rule?: "1" | "2" } {
  if (!isJsonObject(event)) return { ok: false, reason: "event is not a JSON object", rule: "1" };
  const sender = event.sender;
  const senderServer = typeof sender === "string" ? serverNameOf(sender) : undefined;
  if (senderServer === undefined) return { ok: false, reason: "sender has no valid server name", rule: "1" };
  const hubServer = event.hub_server;
  if (hubServer !== undefined && typeof hubServer !== "string") {
    return { ok: false, reason: "hub_server is not a string", rule: "2" };
  }

  if (hubServer === undefined || hubServer === senderServer) {
    // Rule 1, and rule 2 with the same server: its signature covers the whole event.
    const whole = verifyEventSignaturesKeepingBytes(event, senderServer, lookup, rules);
    return whole.ok ? whole : { ...whole, rule: "1" };
  }
  // Rule 1: the sender's server signed the LPDU it sent to the hub.
  const lpdu = verifyEventSignaturesKeepingBytes(lpduFormOf(event), senderServer, lookup, rules);
  if (!lpdu.ok) return { ok: false, reason: `LPDU: ${lpdu.reason}`, rule: "1" };
  // Rule 2: the hub signed the event it completed.
  const hub = verifyEventSignaturesKeepingBytes(event, hubServer, lookup, rules);
  return hub.ok ? hub : { ok: false, reason: `hub: ${hub.reason}`, rule: "2" };
}
