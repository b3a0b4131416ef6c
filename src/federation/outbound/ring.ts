// The hub's recent fan-out in memory: every event the room writer queued for other servers since
// start-up, in stream order, with its destinations and its canonical JSON (encoded once, shared by
// every destination's transactions). A destination whose send cursor is within what the ring
// holds takes its next PDUs from here; one further behind (a backlog from before a restart, a
// long outage) reads the database outbox, which stays the durable record.
import { encodeCanonicalJson } from "../../core/canonical-json.js";
import type { Pdu } from "../../core/events.js";
import type { JsonObject } from "../../core/json.js";

export interface RingEvent {
  readonly streamPos: number;
  readonly eventId: string;
  pdu: Pdu;
  readonly destinations: ReadonlySet<string>;
}

interface Entry extends RingEvent {
  canonical: string | undefined;
}

export const DEFAULT_RING_CAPACITY = 20_000;

export class OutboxRing {
  /** Ascending streamPos. */
  private entries: Entry[] = [];
  private readonly byId = new Map<string, Entry>();
  /** Every queued event with streamPos > floor is here (until evicted, which raises the floor). */
  private floor: number;

  constructor(startPos: number, private readonly capacity: number = DEFAULT_RING_CAPACITY) {
    this.floor = startPos;
  }

  /** Whether every queued event after `afterPos` is in the ring. */
  covers(afterPos: number): boolean {
    return afterPos >= this.floor;
  }

  add(events: readonly RingEvent[]): void {
    for (const event of events) {
      if (event.streamPos <= this.floor || this.byId.has(event.eventId)) continue;
      const entry: Entry = { ...event, canonical: undefined };
      // Commits arrive almost always in stream order; PostgreSQL may swap neighbours.
      let i = this.entries.length;
      while (i > 0 && (this.entries[i - 1] as Entry).streamPos > entry.streamPos) i--;
      this.entries.splice(i, 0, entry);
      this.byId.set(entry.eventId, entry);
    }
    if (this.entries.length > this.capacity) {
      const dropped = this.entries.splice(0, Math.ceil(this.capacity / 10));
      for (const entry of dropped) this.byId.delete(entry.eventId);
      this.floor = (dropped[dropped.length - 1] as Entry).streamPos;
    }
  }

  /** A queued event was redacted: its redacted copy is what goes out from now on. */
  redacted(eventId: string, pdu: Pdu): void {
    const entry = this.byId.get(eventId);
    if (!entry) return;
    entry.pdu = pdu;
    entry.canonical = undefined;
  }

  /** The destination's events with afterPos < streamPos <= maxPos, at most `limit`, ascending. */
  peek(destination: string, afterPos: number, maxPos: number, limit: number): { events: Array<{ streamPos: number; eventId: string; canonical: string }>; heldBack: boolean } {
    const out: Array<{ streamPos: number; eventId: string; canonical: string }> = [];
    let heldBack = false;
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.entries[mid] as Entry).streamPos <= afterPos) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.entries.length && out.length < limit; i++) {
      const entry = this.entries[i] as Entry;
      if (!entry.destinations.has(destination)) continue;
      if (entry.streamPos > maxPos) {
        heldBack = true;
        break;
      }
      entry.canonical ??= encodeCanonicalJson(entry.pdu as unknown as JsonObject, "utf16");
      out.push({ streamPos: entry.streamPos, eventId: entry.eventId, canonical: entry.canonical });
    }
    return { events: out, heldBack };
  }
}
