// One-line builders for auth-rule tests: events, an in-memory RoomStateView, a standard room.
import { selectAuthEvents } from "../../../src/auth-rules/index.js";
import type { Pdu, RoomEvent, RoomStateView } from "../../../src/core/events.js";
import type { JsonObject } from "../../../src/core/json.js";

export const HUB = "hub.example";
export const ROOM_ID = "!room:hub.example";
/** Creator, level 100 in the standard room. */
export const ALICE = "@alice:hub.example";
/** Moderators, level 50. */
export const MOD = "@mod:hub.example";
export const MOD2 = "@mod2:remote.example";
/** Joined, level 0. */
export const BOB = "@bob:remote.example";
/** Not in the room. */
export const CAROL = "@carol:remote.example";
/** Banned. */
export const EVE = "@eve:remote.example";

/** An event with fake hashes and no signatures (signatures are checked only with `kind: "keys"`). */
export function pdu(type: string, sender: string, content: JsonObject = {}, stateKey?: string, rest: Partial<Pdu> = {}): Pdu {
  return {
    room_id: ROOM_ID,
    type,
    ...(stateKey === undefined ? {} : { state_key: stateKey }),
    sender,
    origin_server_ts: 1_700_000_000_000,
    content,
    hashes: { sha256: "fakehash" },
    signatures: {},
    auth_events: [],
    prev_events: ["$last"],
    ...rest,
  };
}

export const member = (sender: string, target: string, membership: string, rest: Partial<Pdu> = {}): Pdu =>
  pdu("m.room.member", sender, { membership }, target, rest);
export const message = (sender: string, body = "hi"): Pdu => pdu("m.room.message", sender, { msgtype: "m.text", body });
export const stateEvent = (type: string, sender: string, content: JsonObject = {}, stateKey = ""): Pdu =>
  pdu(type, sender, content, stateKey);
export const powerLevelsEvent = (sender: string, content: JsonObject): Pdu => pdu("m.room.power_levels", sender, content, "");
export const createEvent = (sender = ALICE, content: JsonObject = { room_version: "I.1" }, rest: Partial<Pdu> = {}): Pdu =>
  pdu("m.room.create", sender, content, "", { prev_events: [], ...rest });

/** A RoomStateView over a fixed list of events; the last event for a key wins. */
export class MemoryState implements RoomStateView {
  private readonly byKey = new Map<string, RoomEvent>();
  constructor(events: RoomEvent[]) {
    for (const event of events) {
      const stateKey: unknown = event.pdu.state_key;
      if (typeof stateKey === "string") this.byKey.set(JSON.stringify([event.pdu.type, stateKey]), event);
    }
  }
  get(type: string, stateKey: string): RoomEvent | undefined {
    return this.byKey.get(JSON.stringify([type, stateKey]));
  }
  /** A new state with `event` applied on top. */
  with(eventId: string, event: Pdu): MemoryState {
    return new MemoryState([...this.byKey.values(), { eventId, pdu: event }]);
  }
}

export const stateOf = (...events: Array<[string, Pdu]>): MemoryState =>
  new MemoryState(events.map(([eventId, event]) => ({ eventId, pdu: event })));

export const STANDARD_POWER_LEVELS: JsonObject = { users: { [ALICE]: 100, [MOD]: 50, [MOD2]: 50 } };
export const STANDARD_MEMBERS: Readonly<Record<string, string>> = { [ALICE]: "join", [MOD]: "join", [MOD2]: "join", [BOB]: "join", [EVE]: "ban" };

export interface RoomOptions {
  /** Content of m.room.power_levels; null for none. */
  powerLevels?: JsonObject | null;
  /** join_rule of m.room.join_rules; null for no join rules event. */
  joinRule?: string | null;
  /** Memberships, merged over STANDARD_MEMBERS. */
  members?: Record<string, string>;
}

/**
 * A room created by Alice with IDs `$create`, `$power_levels`, `$join_rules`, `$member:<user>`.
 * Defaults: Alice 100, the mods 50, everyone else 0; join rule `invite`; STANDARD_MEMBERS.
 */
export function room(options: RoomOptions = {}): MemoryState {
  const events: Array<[string, Pdu]> = [["$create", createEvent()]];
  const powerLevels = options.powerLevels === undefined ? STANDARD_POWER_LEVELS : options.powerLevels;
  if (powerLevels !== null) events.push(["$power_levels", powerLevelsEvent(ALICE, powerLevels)]);
  const joinRule = options.joinRule === undefined ? "invite" : options.joinRule;
  if (joinRule !== null) events.push(["$join_rules", stateEvent("m.room.join_rules", ALICE, { join_rule: joinRule })]);
  for (const [userId, membership] of Object.entries({ ...STANDARD_MEMBERS, ...options.members })) {
    events.push([`$member:${userId}`, member(membership === "join" ? userId : ALICE, userId, membership)]);
  }
  return stateOf(...events);
}

/** `event` with the auth_events the selection algorithm picks from `state`. */
export const withAuthEvents = (event: Pdu, state: RoomStateView): Pdu => ({ ...event, auth_events: selectAuthEvents(event, state) });
