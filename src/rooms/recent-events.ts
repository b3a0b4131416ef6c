// The last events of each room in memory, as syncs read them, so that a long-polling sync woken
// by a new message takes it from here instead of reading and parsing it again for every member.
//
// The room writer appends every event it commits, in room order, after the commit and before the
// event's stream position is released (as it does for the membership index), so a sync that may
// read a position finds its event here; it also applies redactions the same way. A room's cached
// events are contiguous in roomSeq and end at the room's last committed event, so they answer
// "every event after stream position p" exactly when the oldest cached one is at or below p, or
// is the room's first event. Anything else falls back to storage. Nothing survives a restart: a
// room is cached again from its first commit after start-up.
import type { Pdu } from "../core/events.js";
import type { StoredEvent } from "../storage/ports.js";

/** Events kept per room. */
const DEFAULT_PER_ROOM = 64;
/** Rooms kept; past this the room appended to least recently is dropped. */
const DEFAULT_MAX_ROOMS = 1_000;

export interface RecentWindow {
  /** The cached events with streamPos > afterPos, newest first. */
  events: StoredEvent[];
  /** Whether these are all of the room's events with streamPos > afterPos. */
  complete: boolean;
}

export class RecentEvents {
  /** Per room, ascending and contiguous roomSeq, at most `perRoom`. */
  private readonly rooms = new Map<string, StoredEvent[]>();

  constructor(private readonly limits: { perRoom: number; maxRooms: number } = { perRoom: DEFAULT_PER_ROOM, maxRooms: DEFAULT_MAX_ROOMS }) {}

  /** A committed event (called by the room writer, in room order, before its position is visible). */
  append(event: StoredEvent): void {
    let events = this.rooms.get(event.roomId);
    // Refresh the room's place in the eviction order.
    this.rooms.delete(event.roomId);
    // A gap means an event was committed without passing here: what is cached no longer ends at
    // the room's last event, so start again from this one.
    if (events === undefined || events[events.length - 1]?.roomSeq !== event.roomSeq - 1) events = [];
    events.push(event);
    if (events.length > this.limits.perRoom) events.shift();
    this.rooms.set(event.roomId, events);
    if (this.rooms.size > this.limits.maxRooms) {
      const oldest = this.rooms.keys().next().value;
      if (oldest !== undefined) this.rooms.delete(oldest);
    }
  }

  /** The room was purged from the database (admin API): nothing of it may be served from here. */
  forgetRoom(roomId: string): void {
    this.rooms.delete(roomId);
  }

  /** `eventId` was redacted by `redactedBy`; `pdu` is its redacted copy (as storage now holds). */
  redact(roomId: string, eventId: string, redactedBy: string, pdu: Pdu): void {
    const events = this.rooms.get(roomId);
    if (events === undefined) return;
    const i = events.findIndex((event) => event.eventId === eventId);
    const cached = events[i];
    // Replaced, not changed in place: a sync holding the old object read before the redaction.
    if (cached !== undefined && cached.redactedBy === null) events[i] = { ...cached, pdu, redactedBy };
  }

  /** The room's cached events after `afterPos` (see RecentWindow). */
  after(roomId: string, afterPos: number): RecentWindow {
    const events = this.rooms.get(roomId);
    const newest: StoredEvent[] = [];
    if (events === undefined || events.length === 0) return { events: newest, complete: false };
    for (let i = events.length - 1; i >= 0; i -= 1) {
      const event = events[i] as StoredEvent;
      if (event.streamPos <= afterPos) return { events: newest, complete: true };
      newest.push(event);
    }
    return { events: newest, complete: (events[0] as StoredEvent).roomSeq === 0 };
  }
}
