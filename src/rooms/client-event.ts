// Events as clients see them (Client-Server API "Room Event Format" / ClientEvent, and the
// stripped state of invites and knocks). Federation fields (hashes, signatures, auth and prev
// events) are left out.
import type { Pdu } from "../core/events.js";
import type { JsonObject } from "../core/json.js";
import type { StoredEvent } from "../storage/ports.js";

export interface ClientEvent {
  content: JsonObject;
  event_id: string;
  origin_server_ts: number;
  room_id: string;
  sender: string;
  state_key?: string;
  type: string;
  unsigned?: JsonObject;
}

export interface StrippedStateEvent {
  content: JsonObject;
  sender: string;
  state_key: string;
  type: string;
}

/** Extra `unsigned` fields the caller knows (age, prev_content, transaction_id, redacted_because). */
export function toClientEvent(event: { eventId: string; pdu: Pdu }, unsigned?: JsonObject): ClientEvent {
  const { pdu } = event;
  const out: ClientEvent = {
    content: pdu.content,
    event_id: event.eventId,
    origin_server_ts: pdu.origin_server_ts,
    room_id: pdu.room_id,
    sender: pdu.sender,
    type: pdu.type,
  };
  if (pdu.state_key !== undefined) out.state_key = pdu.state_key;
  if (unsigned !== undefined && Object.keys(unsigned).length > 0) out.unsigned = unsigned;
  return out;
}

export function toStrippedState(event: StoredEvent): StrippedStateEvent {
  return { content: event.pdu.content, sender: event.pdu.sender, state_key: event.pdu.state_key ?? "", type: event.pdu.type };
}

/** The state shown to invitees and knockers (Client-Server API "Stripped state": recommended types). */
export const STRIPPED_STATE_TYPES: ReadonlySet<string> = new Set([
  "m.room.create",
  "m.room.name",
  "m.room.avatar",
  "m.room.topic",
  "m.room.join_rules",
  "m.room.canonical_alias",
  "m.room.encryption",
]);
