// Joins in progress (LM draft "Joins"): while this server waits for a hub's send_join answer, the
// hub may already send the join event, and what follows it, through PUT /send — eigen-server even
// does so before it answers send_join. Those PDUs cannot be applied yet (the replica does not
// exist) and must not wait for the join (the hub may be waiting for our answer): they are kept
// here, answered as accepted, and applied right after the replica is created, under the room's
// lock, before anything that arrives later.
import type { JsonObject } from "../../core/json.js";

interface Pending {
  joins: number;
  buffered: Array<{ origin: string; pdus: JsonObject[] }>;
}

export class JoinsInProgress {
  private readonly rooms = new Map<string, Pending>();

  begin(roomId: string): void {
    const pending = this.rooms.get(roomId);
    if (pending) pending.joins++;
    else this.rooms.set(roomId, { joins: 1, buffered: [] });
  }

  /** Keeps `pdus` for the join of `roomId` in progress; false when there is none. */
  buffer(roomId: string, origin: string, pdus: JsonObject[]): boolean {
    const pending = this.rooms.get(roomId);
    if (!pending) return false;
    pending.buffered.push({ origin, pdus });
    return true;
  }

  /** Ends one join of `roomId`; returns what arrived meanwhile (once the last join ends). */
  end(roomId: string): Array<{ origin: string; pdus: JsonObject[] }> {
    const pending = this.rooms.get(roomId);
    if (!pending) return [];
    const buffered = pending.buffered;
    pending.buffered = [];
    if (--pending.joins === 0) this.rooms.delete(roomId);
    return buffered;
  }
}
