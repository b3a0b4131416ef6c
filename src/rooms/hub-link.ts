// The room service's way to rooms hosted elsewhere (LM draft "Sending Events", "Room Membership"):
// a participant sends LPDUs to the hub and learns each event's final form from the hub's fan-out;
// a server not yet in a room goes through the make/send handshake; an invite of a user on a server
// not in the room goes to that server for its signature. The federation layer implements it; the
// room service only declares what it needs (DESIGN.md "Layers").
import type { Lpdu, RoomEvent } from "../core/events.js";
import type { JsonObject } from "../core/json.js";

/** Where an echoed event was stored here. */
export interface EchoedEvent {
  event: RoomEvent;
  roomSeq: number;
  streamPos: number;
}

export interface HubLink {
  /**
   * Sends `lpdu` to `hubServer` and resolves once the hub's completed PDU has come back and has
   * been stored here (the "echo"), or rejects with the hub's refusal as a MatrixError.
   */
  sendLpdu(hubServer: string, lpdu: Lpdu): Promise<EchoedEvent>;
  /**
   * make_CHANGE + send_CHANGE (join, leave, knock) for a local user and a room this server is not
   * in, trying `servers` in order; a join creates the replica before it resolves.
   */
  changeMembershipRemotely(change: "join" | "leave" | "knock", userId: string, roomId: string, servers: string[], content: JsonObject): Promise<void>;
  /** Asks the invitee's server to sign an invite event (hub side of `invite`); M_FORBIDDEN etc. when it refuses. */
  countersignInvite(event: RoomEvent, roomVersion: string, strippedState: JsonObject[]): Promise<RoomEvent>;
  /** Participant: an invite LPDU through the hub's `invite` endpoint; resolves when the hub appended it. */
  inviteThroughHub(hubServer: string, lpdu: Lpdu, roomVersion: string): Promise<void>;
  /**
   * The hub's history of a room up to and including `eventId`, newest first, at most `limit`
   * events, each checked (schema, signatures, hashes; a tampered one comes back redacted).
   */
  backfill(hubServer: string, roomId: string, eventId: string, limit: number): Promise<RoomEvent[]>;
  /** A room alias of another server: its room ID and servers in the room. */
  resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
}
