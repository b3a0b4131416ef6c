// Sync filters (Client-Server API "Filtering"): a filter ID uploaded by the user or inline JSON.
// Bobbin applies the room, timeline, state, ephemeral and account-data parts; presence is not
// served.
import { Errcode, MatrixError } from "../../core/errors.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import type { FiltersRepo } from "../../storage/ports.js";
import { parseRoomEventFilter, type RoomEventFilter } from "../../rooms/event-filter.js";

export interface SyncFilter {
  rooms?: string[];
  notRooms: string[];
  includeLeave: boolean;
  timeline: RoomEventFilter;
  state: RoomEventFilter;
  ephemeral: RoomEventFilter;
  roomAccountData: RoomEventFilter;
  accountData: RoomEventFilter;
}

export const DEFAULT_TIMELINE_LIMIT = 10;

export function parseSyncFilter(json: JsonObject | undefined): SyncFilter {
  const room = isJsonObject(json?.room) ? json.room : {};
  const base = parseRoomEventFilter(room);
  const filter: SyncFilter = {
    notRooms: base.notRooms,
    includeLeave: room.include_leave === true,
    timeline: parseRoomEventFilter(room.timeline),
    state: parseRoomEventFilter(room.state),
    ephemeral: parseRoomEventFilter(room.ephemeral),
    roomAccountData: parseRoomEventFilter(room.account_data),
    accountData: parseRoomEventFilter(json?.account_data),
  };
  if (base.rooms) filter.rooms = base.rooms;
  return filter;
}

/** The `filter` query parameter: inline JSON (starting with `{`) or the ID of a stored filter. */
export async function resolveSyncFilter(filters: FiltersRepo, userId: string, raw: string | undefined): Promise<SyncFilter> {
  if (raw === undefined || raw.length === 0) return parseSyncFilter(undefined);
  if (isInlineFilter(raw)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      throw new MatrixError(Errcode.BAD_JSON, 400, "filter is not valid JSON");
    }
    if (!isJsonObject(parsed)) throw new MatrixError(Errcode.BAD_JSON, 400, "filter must be a JSON object");
    return parseSyncFilter(parsed);
  }
  const stored = await filters.get(userId, raw);
  if (!stored) throw new MatrixError(Errcode.NOT_FOUND, 404, `No filter ${raw} for ${userId}`);
  return parseSyncFilter(stored);
}

/** Shared between requests once cached: frozen, so a change by mistake throws instead of leaking into other syncs. */
function freezeSyncFilter(filter: SyncFilter): SyncFilter {
  for (const part of [filter.timeline, filter.state, filter.ephemeral, filter.roomAccountData, filter.accountData]) {
    for (const list of [part.types, part.notTypes, part.senders, part.notSenders, part.rooms, part.notRooms]) if (list) Object.freeze(list);
    Object.freeze(part);
  }
  if (filter.rooms) Object.freeze(filter.rooms);
  Object.freeze(filter.notRooms);
  return Object.freeze(filter);
}

const isInlineFilter = (raw: string): boolean => raw.trimStart().startsWith("{");

/** Resolved filters kept; past this the oldest is dropped. */
const DEFAULT_CACHED_FILTERS = 1_000;

/**
 * resolveSyncFilter with its answers kept in memory: a client sends the same `filter` with every
 * sync, and parsing it again (or, for a filter ID, reading it again) was part of every long-poll's
 * cost. Safe to keep because a filter cannot change: inline JSON is its own key, and an uploaded
 * filter is never updated or deleted (Client-Server API "Filtering": POST .../filter only creates
 * one). Stored filters are keyed by owner too, since their IDs are checked against the owner.
 * Errors are not kept. The SyncFilter returned is shared between requests: callers must not change it.
 */
export class SyncFilterCache {
  private readonly resolved = new Map<string, SyncFilter>();

  constructor(
    private readonly filters: FiltersRepo,
    private readonly capacity = DEFAULT_CACHED_FILTERS,
  ) {}

  async resolve(userId: string, raw: string | undefined): Promise<SyncFilter> {
    if (raw === undefined || raw.length === 0) return this.remember("", () => parseSyncFilter(undefined));
    const key = isInlineFilter(raw) ? raw : `${userId}\u0000${raw}`;
    const cached = this.resolved.get(key);
    if (cached !== undefined) return cached;
    const filter = await resolveSyncFilter(this.filters, userId, raw);
    return this.remember(key, () => filter);
  }

  private remember(key: string, make: () => SyncFilter): SyncFilter {
    const cached = this.resolved.get(key);
    if (cached !== undefined) return cached;
    const filter = freezeSyncFilter(make());
    if (this.resolved.size >= this.capacity) this.resolved.delete(this.resolved.keys().next().value as string);
    this.resolved.set(key, filter);
    return filter;
  }
}
