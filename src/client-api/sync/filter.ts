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
  if (raw.trimStart().startsWith("{")) {
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
