// One outbound `PUT /send/{txnId}` transaction: its body and what its 200 response says (LM draft
// "PUT /_matrix/federation/v2/send/:txnId"). Pure: the queue decides what goes in and when.
import { LM_UNSTABLE } from "../paths.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../../core/json.js";

/**
 * Where peers serve the send endpoint today (the draft's implementation note; DESIGN.md "Wire
 * compatibility decisions": we call the unstable prefix as peers do).
 */
export const SEND_PATH_PREFIX = `/_matrix/federation${LM_UNSTABLE}/send/`;

/** The draft's limits per transaction: at most 50 PDUs and LPDUs, at most 100 EDUs. */
export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;

export function sendPath(txnId: string): string {
  return SEND_PATH_PREFIX + encodeURIComponent(txnId);
}

/**
 * The request body. `edus` is left out when empty (the draft allows it). `origin` and
 * `origin_server_ts` are not in the LM body, but classic Matrix receivers require them (Server-Server
 * API "Transactions"), and LM receivers ignore unknown fields.
 */
export function transactionBody(origin: string, originServerTs: number, pdus: JsonObject[], edus: JsonObject[]): JsonObject {
  const body: JsonObject = { origin, origin_server_ts: originServerTs, pdus };
  if (edus.length > 0) body.edus = edus;
  return body;
}

/**
 * transactionBody as canonical JSON, spliced from the canonical JSON of each PDU and EDU (encoded
 * once per event, shared by every destination): keys in RFC 8785 order (`edus` < `origin` <
 * `origin_server_ts` < `pdus`).
 */
export function canonicalTransactionBody(origin: string, originServerTs: number, pdus: readonly string[], edus: readonly string[]): string {
  const head = edus.length > 0 ? `{"edus":[${edus.join(",")}],` : "{";
  return `${head}"origin":${JSON.stringify(origin)},"origin_server_ts":${originServerTs},"pdus":[${pdus.join(",")}]}`;
}

/**
 * `failed_pdus` of a 200 response: event ID (as sent, so an LPDU's own ID) -> error string. A
 * missing or malformed field means nothing failed; an entry without a string `error` still failed.
 */
export function failedPdusOf(response: JsonValue | undefined): Map<string, string> {
  const failed = new Map<string, string>();
  if (!isJsonObject(response)) return failed;
  const field = response.failed_pdus;
  if (!isJsonObject(field)) return failed;
  for (const [eventId, entry] of Object.entries(field)) {
    const error = isJsonObject(entry) ? entry.error : undefined;
    failed.set(eventId, typeof error === "string" ? error : "rejected without a reason");
  }
  return failed;
}
