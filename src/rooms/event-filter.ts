// RoomEventFilter (Client-Server API "Filtering"): which events a timeline, /messages or
// /context returns. Type and sender patterns may use `*` as a wildcard.
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";
import type { Pdu } from "../core/events.js";

export interface RoomEventFilter {
  limit?: number;
  types?: string[];
  notTypes: string[];
  senders?: string[];
  notSenders: string[];
  rooms?: string[];
  notRooms: string[];
  containsUrl?: boolean;
  lazyLoadMembers: boolean;
}

export const EMPTY_EVENT_FILTER: RoomEventFilter = { notTypes: [], notSenders: [], notRooms: [], lazyLoadMembers: false };

function stringList(value: JsonValue | undefined): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter((item): item is string => typeof item === "string");
}

/** Reads a filter leniently: unknown or ill-typed fields are ignored, as clients send extensions. */
export function parseRoomEventFilter(json: JsonValue | undefined): RoomEventFilter {
  if (!isJsonObject(json)) return EMPTY_EVENT_FILTER;
  const limit = json.limit;
  const filter: RoomEventFilter = {
    notTypes: stringList(json.not_types) ?? [],
    notSenders: stringList(json.not_senders) ?? [],
    notRooms: stringList(json.not_rooms) ?? [],
    lazyLoadMembers: json.lazy_load_members === true,
  };
  if (typeof limit === "number" && Number.isSafeInteger(limit) && limit > 0) filter.limit = limit;
  const types = stringList(json.types);
  if (types) filter.types = types;
  const senders = stringList(json.senders);
  if (senders) filter.senders = senders;
  const rooms = stringList(json.rooms);
  if (rooms) filter.rooms = rooms;
  if (typeof json.contains_url === "boolean") filter.containsUrl = json.contains_url;
  return filter;
}

/** Parses the JSON text of a `filter` query parameter (M_BAD_JSON... is not wanted: be lenient). */
export function parseFilterParam(raw: string | undefined): JsonObject | undefined {
  if (raw === undefined || raw.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function globMatches(pattern: string, value: string): boolean {
  if (!pattern.includes("*")) return pattern === value;
  const escaped = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join(".*")}$`).test(value);
}

export function typeMatches(patterns: string[] | undefined, notPatterns: string[], type: string): boolean {
  if (notPatterns.some((pattern) => globMatches(pattern, type))) return false;
  return patterns === undefined || patterns.some((pattern) => globMatches(pattern, type));
}

export function roomMatches(filter: { rooms?: string[]; notRooms: string[] }, roomId: string): boolean {
  if (filter.notRooms.includes(roomId)) return false;
  return filter.rooms === undefined || filter.rooms.includes(roomId);
}

export function eventMatches(filter: RoomEventFilter, pdu: Pdu): boolean {
  if (!typeMatches(filter.types, filter.notTypes, pdu.type)) return false;
  if (filter.notSenders.includes(pdu.sender)) return false;
  if (filter.senders !== undefined && !filter.senders.includes(pdu.sender)) return false;
  if (filter.containsUrl !== undefined) {
    const hasUrl = typeof pdu.content.url === "string";
    if (hasUrl !== filter.containsUrl) return false;
  }
  return true;
}
