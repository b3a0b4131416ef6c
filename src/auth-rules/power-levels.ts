// Power levels (LM draft "Calculating Power Levels" and the `m.room.power_levels` event type).
// Values in a stored power-levels event that are not integers are treated as absent, so a
// malformed event already in the room falls back to the defaults and never throws.
import type { RoomStateView } from "../core/events.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";

export type PowerAction = "kick" | "ban" | "invite" | "redact";

/** The seven top-level integer fields of `m.room.power_levels` content (auth rules 9.1 and 9.5). */
export const POWER_LEVEL_INTEGER_FIELDS = [
  "users_default",
  "events_default",
  "state_default",
  "ban",
  "redact",
  "kick",
  "invite",
] as const;

/** Draft "m.room.power_levels": defaults when a field is unspecified. */
export const ACTION_DEFAULTS: Readonly<Record<PowerAction, number>> = { kick: 50, ban: 50, invite: 0, redact: 50 };
export const EVENTS_DEFAULT = 0;
export const STATE_DEFAULT = 50;
export const USERS_DEFAULT = 0;
/** Draft: with no power-levels event, the room creator (sender of `m.room.create`) has 100. */
export const CREATOR_DEFAULT_LEVEL = 100;

/** A room's power levels as seen in one state; every lookup has a defined answer. */
export interface PowerLevels {
  /** Whether the room has an `m.room.power_levels` event at all. */
  readonly hasEvent: boolean;
  userLevel(userId: string): number;
  actionLevel(action: PowerAction): number;
  /** Level required to send an event of `type`; `isState` when it has a `state_key` (even ""). */
  eventLevel(type: string, isState: boolean): number;
}

/** Protocol integers: JSON numbers that are integers within ±(2^53−1) (canonical JSON's range). */
export function isPowerLevelInteger(value: JsonValue | undefined): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

/** `object[key]` if it is an own property that is an integer; undefined otherwise. */
export function integerField(object: JsonObject | undefined, key: string): number | undefined {
  if (object === undefined || !Object.hasOwn(object, key)) return undefined;
  const value = object[key];
  return isPowerLevelInteger(value) ? value : undefined;
}

/** `object[key]` if it is an own property holding an object; undefined otherwise. */
export function objectField(object: JsonObject | undefined, key: string): JsonObject | undefined {
  if (object === undefined || !Object.hasOwn(object, key)) return undefined;
  const value = object[key];
  return isJsonObject(value) ? value : undefined;
}

/**
 * Power levels from the content of an `m.room.power_levels` event, or from its absence
 * (`content` undefined), in which case `creator` has 100 and everyone else `users_default` 0.
 */
export function powerLevelsFromContent(content: JsonObject | undefined, creator: string | undefined): PowerLevels {
  const users = objectField(content, "users");
  const events = objectField(content, "events");
  const usersDefault = integerField(content, "users_default") ?? USERS_DEFAULT;
  return {
    hasEvent: content !== undefined,
    userLevel(userId) {
      if (content === undefined) return userId === creator ? CREATOR_DEFAULT_LEVEL : USERS_DEFAULT;
      // "Calculating Power Levels", user: 1. `users[userId]`; 2. `users_default`; 3. 0.
      return integerField(users, userId) ?? usersDefault;
    },
    actionLevel(action) {
      // Action: 1. the field if present; 2. its default (kick/ban/redact 50, invite 0).
      return integerField(content, action) ?? ACTION_DEFAULTS[action];
    },
    eventLevel(type, isState) {
      // Event: 1. `events[type]`; 2.1 state events `state_default` (50); 2.2 others `events_default` (0).
      const level = integerField(events, type);
      if (level !== undefined) return level;
      return isState
        ? (integerField(content, "state_default") ?? STATE_DEFAULT)
        : (integerField(content, "events_default") ?? EVENTS_DEFAULT);
    },
  };
}

/** Power levels of the room in `state`: its `m.room.power_levels` event, or the creator default. */
export function powerLevelsFrom(state: RoomStateView): PowerLevels {
  const event = state.get("m.room.power_levels", "");
  // A stored power-levels event whose content is not an object counts as one with every field
  // absent: the room has power levels, so the creator's implicit 100 no longer applies.
  const content = event === undefined ? undefined : isJsonObject(event.pdu.content) ? event.pdu.content : {};
  return powerLevelsFromContent(content, creatorOf(state));
}

/** The room creator: the `sender` of `m.room.create` (draft "m.room.power_levels"). */
export function creatorOf(state: RoomStateView): string | undefined {
  const sender: unknown = state.get("m.room.create", "")?.pdu.sender;
  return typeof sender === "string" ? sender : undefined;
}
