// Wire shapes of events (LM draft "Events" and "Linearized PDU"). Field names are the protocol's.
import type { JsonObject } from "./json.js";

/** `signatures`: server name (or user ID) -> key ID -> unpadded base64 signature. */
export type Signatures = Record<string, Record<string, string>>;

/** `hashes` of a PDU: `sha256` over the whole event, and `lpdu.sha256` when a hub completed an LPDU. */
export interface PduHashes {
  sha256: string;
  lpdu?: { sha256: string };
}

/** A fully formed event (PDU). `hub_server` is set only when a hub completed it from an LPDU. */
export interface Pdu {
  room_id: string;
  type: string;
  state_key?: string;
  sender: string;
  origin_server_ts: number;
  hub_server?: string;
  content: JsonObject;
  hashes: PduHashes;
  signatures: Signatures;
  auth_events: string[];
  prev_events: string[];
  unsigned?: JsonObject;
}

/** A partial event a participant sends to the hub: no auth/prev events, only `hashes.lpdu`. */
export interface Lpdu {
  room_id: string;
  type: string;
  state_key?: string;
  sender: string;
  origin_server_ts: number;
  hub_server: string;
  content: JsonObject;
  hashes: { lpdu: { sha256: string } };
  signatures: Signatures;
  unsigned?: JsonObject;
}

/** An event as stored and indexed: the PDU plus its computed event ID. */
export interface RoomEvent {
  eventId: string;
  pdu: Pdu;
}

export function isStateEvent(event: { state_key?: string }): boolean {
  return typeof event.state_key === "string";
}

/** Read access to a room's state at some point (before an event, or current). */
export interface RoomStateView {
  /** The state event for `(type, stateKey)`, if any. */
  get(type: string, stateKey: string): RoomEvent | undefined;
}
