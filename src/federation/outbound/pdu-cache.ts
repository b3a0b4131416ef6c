// A bounded map of event ID -> the PDU object sent for it. A hub fans every event out to every
// server in the room, so the same event sits in hundreds of destinations' transactions at once;
// with this cache they all hold one object instead of one parsed copy each (memory), and an
// event's object identity is stable across destinations (what a per-object encoding memo needs).
import type { Pdu } from "../../core/events.js";

export const DEFAULT_PDU_CACHE_ENTRIES = 10_000;

/** Least recently used eviction over Map insertion order (the first key is the oldest). */
export class PduCache {
  private readonly entries = new Map<string, Pdu>();

  constructor(private readonly capacity: number = DEFAULT_PDU_CACHE_ENTRIES) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached PDU of `eventId` if it is still the stored form, else `stored` (now cached).
   *
   * A stored event changes in one way only: a redaction replaces it with its redacted copy, which
   * must be what goes out from then on. Redaction only removes keys — top-level ones and keys of
   * `content`, never changing a kept value (Matrix spec "Redactions", LM draft "Redactions") — so a
   * copy with as many keys in both places as the cached one is the same event in the same form.
   */
  intern(eventId: string, stored: Pdu): Pdu {
    const cached = this.entries.get(eventId);
    if (cached !== undefined && sameForm(cached, stored)) {
      this.entries.delete(eventId);
      this.entries.set(eventId, cached);
      return cached;
    }
    this.entries.delete(eventId);
    this.entries.set(eventId, stored);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    return stored;
  }
}

function sameForm(a: Pdu, b: Pdu): boolean {
  return Object.keys(a).length === Object.keys(b).length && Object.keys(a.content).length === Object.keys(b.content).length;
}
