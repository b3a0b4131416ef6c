// The receive pipeline (LM draft "Receiving Events/PDUs", "Authorization Rules"; DESIGN.md "Hub
// pipeline"). Each function runs the numbered steps and returns what the caller must do; none of
// them throws, fetches or stores. Keys are resolved beforehand by the caller (the key ring).
//
// A PDU (participant receiving from the hub, or any server receiving a full event):
//   1. schema and size (canonical JSON ≤ 65,536 bytes)      -> drop
//   2. required signatures: the sender's server (over the LPDU form when a hub completed it) and
//      the hub when `hub_server` is set, which must be the room's hub -> drop
//   3. content hashes: the PDU hash, and the LPDU hash when `hub_server` is set
//                                                             -> a mismatch continues with the redacted copy
//   4. auth rules against the state before the event          -> reject
//   5. room policy beyond the auth rules (e.g. MLS commit checks), when the caller supplies one
//                                                             -> soft-fail
//
// An LPDU arriving at its hub:
//   1. schema and size; `hub_server` must be this hub          -> reject
//   2. the sender's server signature over the LPDU             -> reject
//   3. the LPDU content hash                                   -> reject (see below)
//   4. completion into a PDU placed after the current tip
//   5. auth rules against current state, then the room policy  -> reject
// The hub answers the participant directly (`failed_pdus`), so every failure is a rejection the
// sender sees. A hash mismatch in an LPDU is rejected rather than redacted: nothing is in the room
// yet, and the only party that could have sent a bad hash is the one being answered.
import { authorize } from "../auth-rules/authorize.js";
import type { Lpdu, Pdu, RoomEvent, RoomStateView } from "../core/events.js";
import { checkContentHash, eventIdOfSignedBytes } from "../core/hashes.js";
import { serverNameOf } from "../core/identifiers.js";
import type { JsonObject } from "../core/json.js";
import { redact } from "../core/redaction.js";
import type { RoomVersionRules } from "../core/room-versions.js";
import { checkEventSignaturesKeepingBytes, verifyEventSignatures, type VerifyKeyLookup } from "../core/signing.js";
import { completeLpdu, type RoomTip, type ServerIdentity } from "./event-builder.js";
import { parseLpdu, parsePdu } from "./event-schema.js";
import { hubServerOf } from "./room-log.js";

/** Checks beyond the auth rules that a room applies, e.g. the MLS commit rules (mls-overlay). */
export type RoomPolicy = (event: RoomEvent, stateBefore: RoomStateView) => { ok: true } | { ok: false; reason: string };

export type PduOutcome =
  | { action: "accept"; event: RoomEvent }
  /** Step 3: a content hash did not match; the redacted copy passed the remaining steps and is what to store. */
  | { action: "store-redacted"; event: RoomEvent; reason: string }
  | { action: "drop"; step: 1 | 2; reason: string }
  | { action: "reject"; step: 4; rule: string; reason: string; eventId: string }
  | { action: "soft-fail"; step: 5; reason: string; event: RoomEvent };

export interface PduContext {
  readonly rules: RoomVersionRules;
  readonly keys: VerifyKeyLookup;
  /** State before this event: the replica's current state when appending in order. */
  readonly stateBefore: RoomStateView;
  /** The room the event must belong to. */
  readonly roomId?: string;
  readonly policy?: RoomPolicy;
}

/** Receive steps 1–3 only: what can be checked of an event without the state before it. */
export type PduIntegrity =
  | { action: "accept"; event: RoomEvent }
  | { action: "store-redacted"; event: RoomEvent; reason: string }
  | { action: "drop"; step: 1 | 2; reason: string };

/**
 * Steps 1–3 (schema, signatures, content hashes) of an event whose state before it is not known
 * here: the state a hub's `send_join` answer carries. `hubServer` is the room's hub.
 */
export function checkPduIntegrity(raw: unknown, ctx: { rules: RoomVersionRules; keys: VerifyKeyLookup; roomId?: string; hubServer: string | undefined }): PduIntegrity {
  const { rules } = ctx;
  // Step 1: schema and size.
  const parsed = parsePdu(raw, rules, ctx.roomId);
  if (!parsed.ok) return { action: "drop", step: 1, reason: parsed.reason };
  let pdu = parsed.event;
  const json = pdu as unknown as JsonObject;

  // Step 2: the sender's server and, when set, the hub must have signed; nobody else counts.
  const signatures = checkEventSignaturesKeepingBytes(json, ctx.keys, rules);
  if (!signatures.ok) return { action: "drop", step: 2, reason: signatures.reason };
  // Only the room's hub completes LPDUs: a `hub_server` naming any other server is not the room's.
  if (pdu.hub_server !== undefined && ctx.hubServer !== undefined && pdu.hub_server !== ctx.hubServer) {
    return { action: "drop", step: 2, reason: `hub_server ${pdu.hub_server} is not the room's hub ${ctx.hubServer}` };
  }

  // Step 3: content hashes; a mismatch means the content was altered, so keep only the redacted copy.
  const hashProblem = contentHashProblem(pdu, rules);
  if (hashProblem !== undefined) pdu = redact(json, rules.redaction) as unknown as Pdu;
  // The last signature checked covers the redacted event: the reference hash's input.
  const event: RoomEvent = { eventId: eventIdOfSignedBytes(signatures.signedBytes), pdu };
  return hashProblem === undefined ? { action: "accept", event } : { action: "store-redacted", event, reason: hashProblem };
}

export function receivePdu(raw: unknown, ctx: PduContext): PduOutcome {
  const { rules } = ctx;
  const integrity = checkPduIntegrity(raw, { rules, keys: ctx.keys, ...(ctx.roomId !== undefined ? { roomId: ctx.roomId } : {}), hubServer: hubServerOf(ctx.stateBefore) });
  if (integrity.action === "drop") return integrity;
  const { event } = integrity;
  const { pdu } = event;
  const hashProblem = integrity.action === "store-redacted" ? integrity.reason : undefined;

  // Step 4: auth rules against the state before the event (signatures were checked in step 2).
  const verdict = authorize(pdu, ctx.stateBefore, rules, { kind: "verified" });
  if (!verdict.ok) return { action: "reject", step: 4, rule: verdict.rule, reason: verdict.reason, eventId: event.eventId };

  // Step 5: the room's own policy (MLS); a failing PDU is kept out of current state, not rejected.
  if (ctx.policy) {
    const policy = ctx.policy(event, ctx.stateBefore);
    if (!policy.ok) return { action: "soft-fail", step: 5, reason: policy.reason, event };
  }
  return hashProblem === undefined ? { action: "accept", event } : { action: "store-redacted", event, reason: hashProblem };
}

function contentHashProblem(pdu: Pdu, rules: RoomVersionRules): string | undefined {
  const json = pdu as unknown as JsonObject;
  const whole = checkContentHash(json, "pdu", rules);
  if (!whole.ok) return whole.reason;
  if (pdu.hub_server === undefined) return undefined;
  const lpdu = checkContentHash(json, "lpdu", rules);
  return lpdu.ok ? undefined : lpdu.reason;
}

export type LpduOutcome =
  | { action: "accept"; event: RoomEvent }
  | { action: "reject"; step: 1 | 2 | 3 | 5; rule?: string; reason: string };

export interface LpduContext {
  readonly rules: RoomVersionRules;
  readonly keys: VerifyKeyLookup;
  /** The room's log tip and current state, under the room's lock. */
  readonly tip: RoomTip;
  readonly hub: ServerIdentity;
  readonly roomId?: string;
  readonly policy?: RoomPolicy;
}

/** Hub side: check an LPDU, complete it after the current tip and authorize it. */
export function acceptLpdu(raw: unknown, ctx: LpduContext): LpduOutcome {
  const { rules } = ctx;
  // Step 1: schema and size; it must be addressed to this hub.
  const parsed = parseLpdu(raw, rules, ctx.roomId);
  if (!parsed.ok) return { action: "reject", step: 1, reason: parsed.reason };
  const lpdu: Lpdu = parsed.event;
  if (lpdu.hub_server !== ctx.hub.serverName) {
    return { action: "reject", step: 1, reason: `LPDU names hub ${lpdu.hub_server}, this hub is ${ctx.hub.serverName}` };
  }

  // Step 2: the sender's server signed the LPDU.
  const senderServer = serverNameOf(lpdu.sender) as string; // valid user ID: checked in step 1
  const signature = verifyEventSignatures(lpdu as unknown as JsonObject, senderServer, ctx.keys, rules);
  if (!signature.ok) return { action: "reject", step: 2, rule: "1", reason: signature.reason };

  // Step 3: the LPDU content hash.
  const hash = checkContentHash(lpdu as unknown as JsonObject, "lpdu", rules);
  if (!hash.ok) return { action: "reject", step: 3, reason: hash.reason };

  // Step 4: completion: auth events, prev event, content hash, hub signature, event ID.
  const event = completeLpdu(lpdu, ctx.tip, ctx.hub, rules);

  // Step 5: auth rules against current state, then the room's policy.
  const verdict = authorize(event.pdu, ctx.tip, rules, { kind: "verified" });
  if (!verdict.ok) return { action: "reject", step: 5, rule: verdict.rule, reason: verdict.reason };
  if (ctx.policy) {
    const policy = ctx.policy(event, ctx.tip);
    if (!policy.ok) return { action: "reject", step: 5, reason: policy.reason };
  }
  return { action: "accept", event };
}
