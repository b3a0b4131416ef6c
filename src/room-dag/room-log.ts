// The linear room log (LM draft "State Events"): an append-only array of events, the state at any
// index, and membership lookups. This is the pure model; storage keeps the same shape in tables
// (events by room_seq, state history rows, current state) — see DESIGN.md "Storage".
import type { RoomEvent, RoomStateView } from "../core/events.js";
import { serverNameOf } from "../core/identifiers.js";

/** One state key's history: the log indexes at which it changed, ascending, and the events. */
interface StateHistory {
  indexes: number[];
  events: RoomEvent[];
}

const stateKeyOf = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

export class RoomLog implements RoomStateView {
  private readonly events: RoomEvent[] = [];
  private readonly byId = new Map<string, number>();
  private readonly history = new Map<string, StateHistory>();
  /** Joined user IDs, kept current as membership events are appended. */
  private readonly joined = new Set<string>();

  constructor(readonly roomId: string) {}

  get length(): number {
    return this.events.length;
  }

  /** The event at `index` (0 is `m.room.create`). */
  at(index: number): RoomEvent | undefined {
    return this.events[index];
  }

  get lastEvent(): RoomEvent | undefined {
    return this.events[this.events.length - 1];
  }

  indexOf(eventId: string): number | undefined {
    return this.byId.get(eventId);
  }

  getEvent(eventId: string): RoomEvent | undefined {
    const index = this.byId.get(eventId);
    return index === undefined ? undefined : this.events[index];
  }

  /**
   * Appends an accepted event. The caller (the room's single writer) has already run the
   * pipeline; this only refuses what would corrupt the log itself.
   */
  append(event: RoomEvent): number {
    if (this.byId.has(event.eventId)) throw new Error(`event ${event.eventId} is already in ${this.roomId}`);
    if (event.pdu.room_id !== this.roomId) throw new Error(`event ${event.eventId} belongs to ${event.pdu.room_id}`);
    const index = this.events.length;
    this.events.push(event);
    this.byId.set(event.eventId, index);
    const stateKey = event.pdu.state_key;
    if (typeof stateKey === "string") {
      const key = stateKeyOf(event.pdu.type, stateKey);
      let entry = this.history.get(key);
      if (!entry) {
        entry = { indexes: [], events: [] };
        this.history.set(key, entry);
      }
      entry.indexes.push(index);
      entry.events.push(event);
      if (event.pdu.type === "m.room.member") {
        if (event.pdu.content.membership === "join") this.joined.add(stateKey);
        else this.joined.delete(stateKey);
      }
    }
    return index;
  }

  /** Current state: the state after the last event (RoomStateView on the log itself). */
  get(type: string, stateKey: string): RoomEvent | undefined {
    const entry = this.history.get(stateKeyOf(type, stateKey));
    return entry ? entry.events[entry.events.length - 1] : undefined;
  }

  /** The state before the event at `index` (what that event was authorized against). */
  stateBefore(index: number): RoomStateView {
    return {
      get: (type, stateKey) => {
        const entry = this.history.get(stateKeyOf(type, stateKey));
        if (!entry) return undefined;
        // Last change strictly before `index`: binary search over the ascending indexes.
        let lo = 0;
        let hi = entry.indexes.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if ((entry.indexes[mid] as number) < index) lo = mid + 1;
          else hi = mid;
        }
        return lo === 0 ? undefined : entry.events[lo - 1];
      },
    };
  }

  /** The state after the event at `index`. */
  stateAfter(index: number): RoomStateView {
    return this.stateBefore(index + 1);
  }

  /** Every change of one state key, oldest first, with the log index of each. */
  stateHistory(type: string, stateKey: string): Array<{ index: number; event: RoomEvent }> {
    const entry = this.history.get(stateKeyOf(type, stateKey));
    if (!entry) return [];
    return entry.indexes.map((index, i) => ({ index, event: entry.events[i] as RoomEvent }));
  }

  /** All current state events. */
  currentStateEvents(): RoomEvent[] {
    const out: RoomEvent[] = [];
    for (const entry of this.history.values()) out.push(entry.events[entry.events.length - 1] as RoomEvent);
    return out;
  }

  /** A user's current membership; "leave" when they have no membership event. */
  membership(userId: string): string {
    const membership = this.get("m.room.member", userId)?.pdu.content.membership;
    return typeof membership === "string" ? membership : "leave";
  }

  /** Every user that has had a membership event in the room. */
  membersEver(): Iterable<string> {
    const users: string[] = [];
    for (const key of this.history.keys()) {
      if (key.startsWith("m.room.member\u0000")) users.push(key.slice("m.room.member\u0000".length));
    }
    return users;
  }

  joinedMembers(): ReadonlySet<string> {
    return this.joined;
  }

  /** Servers with at least one joined user: the fan-out destinations of the hub. */
  joinedServers(): Set<string> {
    const servers = new Set<string>();
    for (const userId of this.joined) {
      const server = serverNameOf(userId);
      if (server !== undefined) servers.add(server);
    }
    return servers;
  }

  /** The room's hub (LM draft "Hub Selection"). */
  hubServer(): string | undefined {
    return hubServerOf(this);
  }
}

/**
 * The hub is the server of the `m.room.create` sender (LM draft "Hub Selection"). Kept behind this
 * one function so a later `m.room.hub` state event can change it (DESIGN.md "Hub transfer").
 */
export function hubServerOf(state: RoomStateView): string | undefined {
  const create = state.get("m.room.create", "");
  return create ? serverNameOf(create.pdu.sender) : undefined;
}
