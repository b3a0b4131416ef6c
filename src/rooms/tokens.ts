// Client-facing position tokens (opaque to clients; documented here):
//
// - Sync tokens `s<streamPos>_<typingSerial>`: everything in the server-wide stream up to
//   `streamPos` has been delivered, and typing state as of `typingSerial`. Stream positions are
//   persistent, so tokens survive restarts. The typing serial is in memory only; it restarts at the
//   wall clock in milliseconds, so serials issued after a restart are above those issued before it
//   (see sync/typing.ts), and a serial ahead of the current one is treated as "send everything".
// - Hub history tokens `h<eventId>` (a participant's replica only): older history is the hub's,
//   up to and including that event, fetched through the hub's backfill.
// - Room pagination tokens `t<roomSeq>`: the boundary just before the event at `roomSeq` in one
//   room's linear log (`t0` is the very start; `t<last+1>` the end). Backward pagination from `t<n>`
//   returns events with roomSeq < n, forward pagination events with roomSeq >= n. /messages also
//   accepts sync tokens (the `prev_batch`/`next_batch` of /sync).
import { Errcode, MatrixError } from "../core/errors.js";

export interface SyncToken {
  streamPos: number;
  typingSerial: number;
}

const SYNC_TOKEN = /^s([0-9]{1,15})_([0-9]{1,15})$/;
const ROOM_TOKEN = /^t([0-9]{1,15})$/;

export function formatSyncToken(token: SyncToken): string {
  return `s${token.streamPos}_${token.typingSerial}`;
}

/** undefined when `raw` is not a sync token. */
export function parseSyncToken(raw: string): SyncToken | undefined {
  const match = SYNC_TOKEN.exec(raw);
  if (!match) return undefined;
  return { streamPos: Number(match[1]), typingSerial: Number(match[2]) };
}

export function formatRoomToken(boundarySeq: number): string {
  return `t${boundarySeq}`;
}

/** A pagination token as given to /messages: a room boundary or a sync token. */
export type PaginationToken = { kind: "room"; boundarySeq: number } | { kind: "stream"; streamPos: number } | { kind: "hub"; eventId: string };

const HUB_TOKEN = /^h(\$[A-Za-z0-9_-]{1,255})$/;

export function formatHubToken(eventId: string): string {
  return `h${eventId}`;
}

export function parsePaginationToken(raw: string, name: string): PaginationToken {
  const room = ROOM_TOKEN.exec(raw);
  if (room) return { kind: "room", boundarySeq: Number(room[1]) };
  const hub = HUB_TOKEN.exec(raw);
  if (hub) return { kind: "hub", eventId: hub[1] as string };
  const sync = parseSyncToken(raw);
  if (sync) return { kind: "stream", streamPos: sync.streamPos };
  throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} is not a valid pagination token`);
}
