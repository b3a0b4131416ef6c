// Auth events selection (LM draft "Auth Events Selection") and membership lookups.
import type { RoomStateView } from "../core/events.js";
import { isJsonObject, type JsonValue } from "../core/json.js";

export interface StateKey {
  type: string;
  stateKey: string;
}

/** The parts of an event (PDU or LPDU) that decide its auth events. */
export interface AuthEventsSubject {
  type: string;
  sender: string;
  state_key?: string;
  content: unknown;
}

/** `content.membership` if it is a string; undefined for anything else. */
export function membershipIn(content: unknown): string | undefined {
  if (!isJsonObject(content)) return undefined;
  const membership: JsonValue | undefined = Object.hasOwn(content, "membership") ? content.membership : undefined;
  return typeof membership === "string" ? membership : undefined;
}

/**
 * The `(type, state_key)` pairs whose current state events an event's `auth_events` must consist
 * of, in the draft's order and without duplicates. `m.room.create` has none.
 */
export function authEventKeys(event: AuthEventsSubject): StateKey[] {
  if (event.type === "m.room.create") return [];
  const keys: StateKey[] = [
    // 1. The m.room.create event; 2. the current power levels; 3. the sender's membership.
    { type: "m.room.create", stateKey: "" },
    { type: "m.room.power_levels", stateKey: "" },
    { type: "m.room.member", stateKey: event.sender },
  ];
  if (event.type === "m.room.member") {
    // 4.1 The target's membership (often the sender's own, deduplicated below).
    if (typeof event.state_key === "string") keys.push({ type: "m.room.member", stateKey: event.state_key });
    // 4.2 The join rules, when joining or inviting.
    const membership = membershipIn(event.content);
    if (membership === "join" || membership === "invite") keys.push({ type: "m.room.join_rules", stateKey: "" });
  }
  const seen = new Set<string>();
  return keys.filter((key) => {
    const id = JSON.stringify([key.type, key.stateKey]);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** Event IDs for an event's `auth_events`: the selected keys present in `state`, in order. */
export function selectAuthEvents(event: AuthEventsSubject, state: RoomStateView): string[] {
  const ids: string[] = [];
  for (const key of authEventKeys(event)) {
    const found = state.get(key.type, key.stateKey);
    if (found !== undefined) ids.push(found.eventId);
  }
  return ids;
}

/** A user's membership in `state`; "leave" when there is no (well-formed) membership event
 *  (draft "m.room.member": no membership event means `leave`). */
export function membershipOf(state: RoomStateView, userId: string): string {
  return membershipIn(state.get("m.room.member", userId)?.pdu.content) ?? "leave";
}
