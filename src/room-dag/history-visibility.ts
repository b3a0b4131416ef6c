// History visibility (DESIGN.md "Decisions where the draft says TODO"; Matrix Client-Server API
// "Room History Visibility", Server-Server API "Restricting server access to events"). The draft
// leaves this TODO; Bobbin follows Matrix, with one LM rule: `m.mls.commit` events are always
// visible to current members, since MLS clients need every commit.
import type { RoomEvent, RoomStateView } from "../core/events.js";
import { serverNameOf } from "../core/identifiers.js";

export type HistoryVisibility = "world_readable" | "shared" | "invited" | "joined";

const VISIBILITIES: ReadonlySet<string> = new Set(["world_readable", "shared", "invited", "joined"]);
const PERMISSIVENESS: Record<HistoryVisibility, number> = { joined: 0, invited: 1, shared: 2, world_readable: 3 };

/** What visibility needs from the log; RoomLog provides it. */
export interface VisibilityLog {
  at(index: number): RoomEvent | undefined;
  stateBefore(index: number): RoomStateView;
  stateAfter(index: number): RoomStateView;
  stateHistory(type: string, stateKey: string): Array<{ index: number; event: RoomEvent }>;
  membership(userId: string): string;
  /** Every user that has had a membership event in the room. */
  membersEver(): Iterable<string>;
}

/** `m.room.history_visibility` in `state`; `shared` when absent or unknown. */
export function historyVisibilityIn(state: RoomStateView): HistoryVisibility {
  const value = state.get("m.room.history_visibility", "")?.pdu.content.history_visibility;
  return typeof value === "string" && VISIBILITIES.has(value) ? (value as HistoryVisibility) : "shared";
}

/**
 * The visibility that governs the event at `index`: the setting before it; for a change of the
 * setting itself, the more permissive of the old and new one, so those who could see the room
 * then see the change.
 */
export function visibilityAt(log: VisibilityLog, index: number): HistoryVisibility {
  const before = historyVisibilityIn(log.stateBefore(index));
  const event = log.at(index);
  if (event?.pdu.type !== "m.room.history_visibility" || event.pdu.state_key !== "") return before;
  const after = historyVisibilityIn(log.stateAfter(index));
  return PERMISSIVENESS[after] > PERMISSIVENESS[before] ? after : before;
}

/** A user's membership at the event, counting the event itself (a user sees their own join). */
function membershipAt(log: VisibilityLog, index: number, userId: string): string {
  const membership = log.stateAfter(index).get("m.room.member", userId)?.pdu.content.membership;
  return typeof membership === "string" ? membership : "leave";
}

function joinedAfter(log: VisibilityLog, index: number, userId: string): boolean {
  return log
    .stateHistory("m.room.member", userId)
    .some((change) => change.index > index && change.event.pdu.content.membership === "join");
}

function isMlsCommitForMember(log: VisibilityLog, index: number, isMember: boolean): boolean {
  return isMember && log.at(index)?.pdu.type === "m.mls.commit";
}

/**
 * Whether `userId` may see the event at `index` (Client-Server API algorithm):
 * world_readable; joined at the event; shared and joined at any point after it; invited at the
 * event under `invited`. Plus: their own membership events, and `m.mls.commit` for anyone joined now.
 */
export function isVisibleToUser(log: VisibilityLog, index: number, userId: string): boolean {
  const event = log.at(index);
  if (event === undefined) return false;
  // A user always sees changes of their own membership (a kick, a ban, their own leave).
  if (event.pdu.type === "m.room.member" && event.pdu.state_key === userId) return true;
  if (isMlsCommitForMember(log, index, log.membership(userId) === "join")) return true;
  return visibleByHistory(log, index, visibilityAt(log, index), userId);
}

/**
 * Whether `serverName` may see the event at `index` (Server-Server API): as if it were the most
 * privileged of its users that ever had a membership in the room; `m.mls.commit` when one of its
 * users is joined now.
 */
export function isVisibleToServer(log: VisibilityLog, index: number, serverName: string): boolean {
  if (log.at(index) === undefined) return false;
  const users = [...log.membersEver()].filter((userId) => serverNameOf(userId) === serverName);
  if (isMlsCommitForMember(log, index, users.some((userId) => log.membership(userId) === "join"))) return true;
  const visibility = visibilityAt(log, index);
  if (visibility === "world_readable") return true;
  return users.some((userId) => visibleByHistory(log, index, visibility, userId));
}

function visibleByHistory(log: VisibilityLog, index: number, visibility: HistoryVisibility, userId: string): boolean {
  if (visibility === "world_readable") return true;
  const membership = membershipAt(log, index, userId);
  if (membership === "join") return true;
  if (visibility === "shared" && joinedAfter(log, index, userId)) return true;
  return visibility === "invited" && membership === "invite";
}
