// What a remote server may read of a room's stored events (DESIGN.md "History visibility"; Matrix
// Server-Server API "Restricting server access to events"; LM draft "Event and State APIs"). The
// room's history of the only state that matters — `m.room.history_visibility` and the memberships
// of the requesting server's users — is read once and adapted to the kernel's VisibilityLog, so
// room-dag/history-visibility.ts alone decides. Log indexes are room sequence numbers.
import type { RoomEvent, RoomStateView } from "../../core/events.js";
import { serverNameOf } from "../../core/identifiers.js";
import { isVisibleToServer, type VisibilityLog } from "../../room-dag/index.js";
import type { Storage, StoredEvent } from "../../storage/ports.js";

/** What a server is given of an event: all of it, its redacted copy, or nothing at all. */
export type EventAccess = "full" | "redacted" | "none";

export interface ServerView {
  accessTo(event: StoredEvent): EventAccess;
}

const HISTORY_VISIBILITY = "m.room.history_visibility";
const MEMBER = "m.room.member";

/**
 * How `serverName` may read the events of `roomId`. Costs one read per change of the room's
 * history visibility and per membership change of the server's users, whatever the number of
 * events asked about afterwards.
 */
export async function loadServerView(storage: Storage, roomId: string, serverName: string): Promise<ServerView> {
  // Current state keeps a member row for every user that ever had a membership in the room.
  const users = (await storage.events.getMembers(roomId)).filter((userId) => serverNameOf(userId) === serverName);
  const [visibilityChanges, ...memberChanges] = await Promise.all([
    stateKeyHistory(storage, roomId, HISTORY_VISIBILITY, ""),
    ...users.map((userId) => stateKeyHistory(storage, roomId, MEMBER, userId)),
  ]);
  const members = new Map(users.map((userId, i) => [userId, memberChanges[i] ?? []]));
  const history: StateHistory = { visibility: visibilityChanges ?? [], members };
  return {
    accessTo(event) {
      // Soft-failed events stay out of timelines and state (LM draft "Soft Failure"); other
      // servers are not handed them either.
      if (event.softFailed || event.roomId !== roomId) return "none";
      if (isVisibleToServer(logAround(event, history), event.roomSeq, serverName)) return "full";
      // A server that has had a user in the room holds events whose prev_events and auth_events
      // name this one: it knows the event exists, so it gets the redacted copy (LM draft "GET
      // /_matrix/federation/v2/event"). Any other server learns nothing, not even that it exists.
      return users.length > 0 ? "redacted" : "none";
    },
  };
}

interface StateHistory {
  /** Changes of `m.room.history_visibility`, oldest first. */
  visibility: StoredEvent[];
  /** Per user of the requesting server, the changes of its membership, oldest first. */
  members: Map<string, StoredEvent[]>;
}

/** The changes of one state key, oldest first, walking the state history back from current state. */
async function stateKeyHistory(storage: Storage, roomId: string, type: string, stateKey: string): Promise<StoredEvent[]> {
  const changes: StoredEvent[] = [];
  let change = await storage.events.getCurrentStateEvent(roomId, type, stateKey);
  while (change !== undefined) {
    changes.push(change);
    change = await storage.events.getStateEventBefore(roomId, change.roomSeq, type, stateKey);
  }
  return changes.reverse();
}

/** The last change at `roomSeq` or before it (`inclusive`), or strictly before it. */
function latestChange(changes: readonly StoredEvent[], roomSeq: number, inclusive: boolean): StoredEvent | undefined {
  let latest: StoredEvent | undefined;
  for (const change of changes) {
    if (change.roomSeq < roomSeq || (inclusive && change.roomSeq === roomSeq)) latest = change;
    else break;
  }
  return latest;
}

/** The VisibilityLog the kernel needs to decide about `event`. */
function logAround(event: StoredEvent, history: StateHistory): VisibilityLog {
  const stateAt = (roomSeq: number, inclusive: boolean): RoomStateView => ({
    get: (type, stateKey): RoomEvent | undefined => {
      if (type === HISTORY_VISIBILITY && stateKey === "") return latestChange(history.visibility, roomSeq, inclusive);
      if (type === MEMBER) return latestChange(history.members.get(stateKey) ?? [], roomSeq, inclusive);
      return undefined;
    },
  });
  return {
    at: (index) => (index === event.roomSeq ? event : undefined),
    stateBefore: (index) => stateAt(index, false),
    stateAfter: (index) => stateAt(index, true),
    stateHistory: (type, stateKey) => {
      const changes = type === MEMBER ? history.members.get(stateKey) : type === HISTORY_VISIBILITY && stateKey === "" ? history.visibility : undefined;
      return (changes ?? []).map((change) => ({ index: change.roomSeq, event: change }));
    },
    membership: (userId) => {
      const changes = history.members.get(userId) ?? [];
      const membership = changes[changes.length - 1]?.pdu.content.membership;
      return typeof membership === "string" ? membership : "leave";
    },
    membersEver: () => history.members.keys(),
  };
}
