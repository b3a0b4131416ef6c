// Which events an application service is sent (Application Service API "Registration": a service
// is "interested" in an event when a namespace matches). Pure: the event, what is known of its
// room, and the registration in; a verdict out.
import type { Pdu } from "../core/events.js";
import { isServiceRoom, isServiceUser } from "./namespaces.js";
import type { AppserviceRegistration } from "./registration.js";

/** What the verdict needs of the event's room, as of the event. */
export interface RoomView {
  /** Service users (sender or users namespace) joined to the room when the event was appended. */
  joinedServiceUsers: readonly string[];
  /** The room's local aliases and canonical alias (only read when the service has alias namespaces). */
  aliases: readonly string[];
}

export type InterestReason = "sender" | "target" | "member" | "room" | "alias";

/**
 * Why the service gets the event, or undefined. Registration schema: events whose sender or
 * target (a membership's state key) is a service user, events in rooms where a service user is
 * joined, and every event of a room whose ID or one of whose aliases matches a namespace.
 */
export function interestIn(registration: AppserviceRegistration, serverName: string, pdu: Pdu, room: RoomView): InterestReason | undefined {
  if (isServiceUser(registration, pdu.sender, serverName)) return "sender";
  if (pdu.type === "m.room.member" && typeof pdu.state_key === "string" && isServiceUser(registration, pdu.state_key, serverName)) return "target";
  if (room.joinedServiceUsers.length > 0) return "member";
  if (isServiceRoom(registration, pdu.room_id)) return "room";
  if (registration.namespaces.aliases.length > 0 && room.aliases.some((alias) => registration.namespaces.aliases.some((ns) => ns.pattern.test(alias)))) return "alias";
  return undefined;
}

/**
 * The backoff before retry `failures` (1 = after the first failure): doubling from `initialMs`
 * up to `maxMs`, then spread by ±`jitter` so that many services do not retry in step (spec
 * "Pushing events": back off exponentially). `random` is in [0, 1).
 */
export function backoffMs(failures: number, settings: { initialMs: number; maxMs: number; jitter: number }, random: number): number {
  const base = Math.min(settings.maxMs, settings.initialMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (1 - settings.jitter + 2 * settings.jitter * random));
}
