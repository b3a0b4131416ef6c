// GET /_matrix/federation/unstable/org.bobbin.mls/rooms/{roomId}/group_info[?epoch=N] (Bobbin's
// extension of the LM draft's "MLS Considerations"; docs/encrypted-rooms.md): the GroupInfo of
// the room's current MLS epoch, or of epoch N, for a server with a joined user. A participant that
// joined after earlier commits never saw the group's state; it asks its hub for the GroupInfo of the
// epoch the next commit builds on, and checks that commit against it like any other.
//
// Why the hub and not the events: `m.mls.commit` is not a state event, so send_join's state has
// none, and backfill stops at the replica's join; the hub keeps the commit event of every epoch.
import type { RequestHandler, Router } from "../app/http/router.js";
import { decodeBase64 } from "../core/base64.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { serverNameOf } from "../core/identifiers.js";
import { isJsonObject } from "../core/json.js";
import type { Storage } from "../storage/ports.js";
import type { FederationClient } from "../federation/transport/client.js";
import type { GroupInfoFetcher } from "./mls-overlay.js";

/** Relative to /_matrix/federation. */
export const MLS_FEDERATION_PREFIX = "/unstable/org.bobbin.mls";

export interface GroupInfoAnswer {
  group_info: string;
  epoch: number;
  commit_event_id: string;
}

/** The room's GroupInfo of `epoch` (current when undefined) as this server recorded it. */
export async function storedGroupInfo(storage: Storage, roomId: string, epoch: number | undefined): Promise<GroupInfoAnswer | undefined> {
  const group = await storage.mls.getGroup(roomId);
  if (!group) return undefined;
  if (epoch === undefined || epoch === group.epoch) return { group_info: group.groupInfo, epoch: group.epoch, commit_event_id: group.commitEventId };
  // An earlier epoch: the `public_group_state` of the commit event that started it.
  const eventId = await storage.mls.getEpochCommit(roomId, epoch);
  const event = eventId === undefined ? undefined : await storage.events.getEvent(eventId);
  const groupInfo = event?.pdu.content.public_group_state;
  return eventId !== undefined && typeof groupInfo === "string" ? { group_info: groupInfo, epoch, commit_event_id: eventId } : undefined;
}

export function mountMlsFederationRoutes(api: Router, auth: RequestHandler, deps: { storage: Storage }): void {
  // GET /unstable/org.bobbin.mls/rooms/{roomId}/group_info
  api.get(`${MLS_FEDERATION_PREFIX}/rooms/:roomId/group_info`, auth, async (req, res) => {
    const roomId = req.params.roomId as string;
    const origin = res.locals.origin as string;
    const rawEpoch = req.query.epoch;
    const epoch = rawEpoch === undefined ? undefined : Number(rawEpoch);
    if (epoch !== undefined && (!Number.isSafeInteger(epoch) || epoch < 0)) throw new MatrixError(Errcode.INVALID_PARAM, 400, "epoch must be a non-negative integer");
    // Only to a server with a joined user: the GroupInfo names every device in the group.
    const joined = await deps.storage.events.getMembers(roomId, "join");
    if (!joined.some((userId) => serverNameOf(userId) === origin)) throw new MatrixError(Errcode.FORBIDDEN, 403, `${origin} has no user joined to ${roomId}`);
    const answer = await storedGroupInfo(deps.storage, roomId, epoch);
    if (!answer) throw new MatrixError(Errcode.NOT_FOUND, 404, `No MLS GroupInfo of ${epoch === undefined ? "the current epoch" : `epoch ${epoch}`} for ${roomId}`);
    res.json(answer);
  });
}

/** Asks `server` for a room's GroupInfo over federation: undefined for a 404, an error for anything else unusable. */
export function createGroupInfoFetcher(client: FederationClient, timeoutMs = 10_000): GroupInfoFetcher {
  return async (server, roomId, epoch) => {
    const path = `/_matrix/federation${MLS_FEDERATION_PREFIX}/rooms/${encodeURIComponent(roomId)}/group_info`;
    const response = await client.request(server, "GET", path, { timeoutMs, ...(epoch === undefined ? {} : { query: { epoch: String(epoch) } }) });
    if (response.status === 404) return undefined;
    const body = response.json;
    if (response.status !== 200 || !isJsonObject(body)) throw new Error(`${server} answered ${response.status} for ${roomId}'s GroupInfo`);
    const groupInfo = typeof body.group_info === "string" ? decodeBase64(body.group_info) : undefined;
    if (!groupInfo || typeof body.epoch !== "number" || typeof body.commit_event_id !== "string") throw new Error(`${server} answered a malformed GroupInfo for ${roomId}`);
    return { groupInfo, epoch: body.epoch, commitEventId: body.commit_event_id };
  };
}
