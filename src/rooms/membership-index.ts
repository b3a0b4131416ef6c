// Memberships in memory: each user's rooms, and each room's members and history visibility, so
// that syncs, summaries and fan-out do not read them from the database on every request. Loaded
// lazily from storage; the room writer applies every state event it commits, before the event's
// stream position is released, so a sync that can read an event also finds it applied here.
//
// A load racing a commit could read the state just before it; the index then keeps nothing of
// that load (the commit bumps `generation`), and the next call loads again.
//
// What it hands out is never changed afterwards: a user's memberships map is replaced, not
// updated, when one of them changes (so callers may hold it across awaits and iterate it as a
// snapshot, without a copy per call), and so is a room's list of joined members.
import type { Storage } from "../storage/ports.js";

const MEMBER = "m.room.member";
const HISTORY_VISIBILITY = "m.room.history_visibility";

/** Users and rooms kept; past this the map is dropped and reloaded on demand. */
const MAX_USERS = 100_000;
const MAX_ROOMS = 10_000;

export interface MemberState {
  membership: string;
  /** roomSeq of the member event. */
  roomSeq: number;
}

export interface RoomMembers {
  /** Current membership of every user with a member event. */
  readonly members: ReadonlyMap<string, MemberState>;
  /** The current `m.room.history_visibility` value and its event's roomSeq. */
  readonly historyVisibility: { value: unknown; roomSeq: number } | undefined;
}

interface MutableRoom {
  members: Map<string, MemberState>;
  historyVisibility: { value: unknown; roomSeq: number } | undefined;
  /** The joined members, computed on demand and dropped when a membership changes. */
  joined: readonly string[] | undefined;
}

export class MembershipIndex {
  private readonly users = new Map<string, ReadonlyMap<string, string>>();
  private readonly rooms = new Map<string, MutableRoom>();
  private generation = 0;

  constructor(private readonly storage: Storage) {}

  /** The user's current memberships: room ID -> membership (a snapshot: never changed later). */
  async membershipsOf(userId: string): Promise<ReadonlyMap<string, string>> {
    const cached = this.users.get(userId);
    if (cached) return cached;
    const generation = this.generation;
    const loaded: ReadonlyMap<string, string> = await this.storage.events.getMembershipsOfUser(userId);
    if (generation === this.generation) {
      if (this.users.size >= MAX_USERS) this.users.clear();
      this.users.set(userId, loaded);
    }
    return loaded;
  }

  /** The room's members and history visibility, as of the last committed event. */
  room(roomId: string): Promise<RoomMembers> {
    return this.loadRoom(roomId);
  }

  private async loadRoom(roomId: string): Promise<MutableRoom> {
    const cached = this.rooms.get(roomId);
    if (cached) return cached;
    const generation = this.generation;
    const state = await this.storage.events.getCurrentState(roomId);
    const room: MutableRoom = { members: new Map(), historyVisibility: undefined, joined: undefined };
    for (const event of state) {
      if (event.pdu.type === MEMBER && event.pdu.state_key !== undefined && typeof event.pdu.content.membership === "string") {
        room.members.set(event.pdu.state_key, { membership: event.pdu.content.membership, roomSeq: event.roomSeq });
      } else if (event.pdu.type === HISTORY_VISIBILITY && event.pdu.state_key === "") {
        room.historyVisibility = { value: event.pdu.content.history_visibility, roomSeq: event.roomSeq };
      }
    }
    if (generation === this.generation) {
      if (this.rooms.size >= MAX_ROOMS) this.rooms.clear();
      this.rooms.set(roomId, room);
    }
    return room;
  }

  /** User IDs currently joined to the room (a snapshot: never changed later). */
  async joinedMembers(roomId: string): Promise<readonly string[]> {
    const room = this.rooms.get(roomId) ?? (await this.loadRoom(roomId));
    if (room.joined !== undefined) return room.joined;
    const joined: string[] = [];
    for (const [userId, member] of room.members) if (member.membership === "join") joined.push(userId);
    // Kept only on the room object the index holds: a room replaced or dropped meanwhile is not.
    if (this.rooms.get(roomId) === room) room.joined = joined;
    return joined;
  }

  /**
   * The room was purged from the database (admin API). Users' cached memberships may name it:
   * they are all dropped (reloaded on demand), as are loads in flight (the generation moves on).
   */
  forgetRoom(roomId: string): void {
    this.generation += 1;
    this.rooms.delete(roomId);
    this.users.clear();
  }

  /** A state event of `roomId` committed at `roomSeq` (called by the room writer). */
  applyStateEvent(roomId: string, roomSeq: number, event: { type: string; stateKey: string; content: Record<string, unknown> }): void {
    if (event.type === MEMBER) {
      const membership = event.content.membership;
      if (typeof membership !== "string") return;
      this.generation += 1;
      const memberships = this.users.get(event.stateKey);
      if (memberships) this.users.set(event.stateKey, new Map(memberships).set(roomId, membership));
      const room = this.rooms.get(roomId);
      if (room) {
        room.members.set(event.stateKey, { membership, roomSeq });
        room.joined = undefined;
      }
    } else if (event.type === HISTORY_VISIBILITY && event.stateKey === "") {
      this.generation += 1;
      const room = this.rooms.get(roomId);
      if (room) room.historyVisibility = { value: event.content.history_visibility, roomSeq };
    }
  }
}
