// History visibility over stored events: adapts a contiguous run of a room's stored events to the
// kernel's VisibilityLog so the one implementation of the rules (room-dag/history-visibility.ts)
// decides. Log indexes here are stream positions, which order a room's events exactly as roomSeq
// does (the room's single writer allocates them in order).
import type { RoomEvent, RoomStateView } from "../core/events.js";
import { isVisibleToUser, type VisibilityLog } from "../room-dag/index.js";
import type { Storage, StoredEvent } from "../storage/ports.js";
import type { RoomMembers } from "./membership-index.js";

const HISTORY_VISIBILITY = "m.room.history_visibility";
const MEMBER = "m.room.member";
const MLS_COMMIT = "m.mls.commit";

interface Tracked {
  historyVisibility: RoomEvent | undefined;
  member: RoomEvent | undefined;
}

const permissive = (value: unknown): boolean => value === undefined || value === "shared" || value === "world_readable";

/**
 * The events of `events` (ascending roomSeq, no gaps) that `userId` may see, in the same order.
 * Three indexed reads per call, whatever the number of events; none when `room` (the room's
 * current members, from the membership index) shows the user joined, under a `shared` or
 * `world_readable` history visibility, since before the first event.
 */
export async function filterVisibleEvents(storage: Storage, roomId: string, userId: string, events: StoredEvent[], room?: RoomMembers): Promise<StoredEvent[]> {
  const first = events[0];
  if (first === undefined) return [];
  if (room) {
    // Both state events are older than the run, so they held throughout it: the fast path below.
    const member = room.members.get(userId);
    const visibility = room.historyVisibility;
    if (member?.membership === "join" && member.roomSeq < first.roomSeq && (visibility === undefined || (visibility.roomSeq < first.roomSeq && permissive(visibility.value)))) return events;
  }
  const [historyVisibility, member, changes] = await Promise.all([
    storage.events.getStateEventBefore(roomId, first.roomSeq, HISTORY_VISIBILITY, ""),
    storage.events.getStateEventBefore(roomId, first.roomSeq, MEMBER, userId),
    storage.events.getMembershipChanges(userId, 0, Number.MAX_SAFE_INTEGER),
  ]);
  const roomChanges = changes.filter((change) => change.roomId === roomId).sort((a, b) => a.streamPos - b.streamPos);
  const current = roomChanges[roomChanges.length - 1]?.membership ?? "leave";

  // Fast path: a current member of a room that is `shared` or `world_readable` throughout sees all.
  const permissiveEvent = (event: RoomEvent | undefined): boolean => permissive(event?.pdu.content.history_visibility);
  if (current === "join" && permissiveEvent(historyVisibility) && events.every((e) => e.pdu.type !== HISTORY_VISIBILITY || permissiveEvent(e))) {
    return events;
  }

  // State of the two keys that matter before each event; states[i + 1] is the state after events[i].
  const states: Tracked[] = [{ historyVisibility, member }];
  for (const event of events) {
    const previous = states[states.length - 1] as Tracked;
    const next = { ...previous };
    if (event.pdu.type === HISTORY_VISIBILITY && event.pdu.state_key === "") next.historyVisibility = event;
    if (event.pdu.type === MEMBER && event.pdu.state_key === userId) next.member = event;
    states.push(next);
  }
  const indexOf = new Map(events.map((event, i) => [event.streamPos, i]));
  const viewOf = (tracked: Tracked | undefined): RoomStateView => ({
    get: (type, stateKey) => {
      if (type === HISTORY_VISIBILITY && stateKey === "") return tracked?.historyVisibility;
      if (type === MEMBER && stateKey === userId) return tracked?.member;
      return undefined;
    },
  });
  const joins = roomChanges.filter((change) => change.membership === "join");
  const joinEvents = await Promise.all(joins.map((change) => storage.events.getEvent(change.eventId)));
  const history = joins.flatMap((change, i) => {
    const event = joinEvents[i];
    return event ? [{ index: change.streamPos, event: event as RoomEvent }] : [];
  });

  const log: VisibilityLog = {
    at: (index) => {
      const i = indexOf.get(index);
      return i === undefined ? undefined : events[i];
    },
    stateBefore: (index) => viewOf(states[indexOf.get(index) ?? -1]),
    stateAfter: (index) => viewOf(states[(indexOf.get(index) ?? -2) + 1]),
    stateHistory: (type, stateKey) => (type === MEMBER && stateKey === userId ? history : []),
    membership: (user) => (user === userId ? current : "leave"),
    membersEver: () => [userId],
  };
  // DESIGN.md "History visibility": m.mls.commit events are always visible to members (MLS needs them).
  return events.filter((event) => (current === "join" && event.pdu.type === MLS_COMMIT) || isVisibleToUser(log, event.streamPos, userId));
}
