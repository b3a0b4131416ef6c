// The room routes of the admin API (Synapse Admin API "Rooms"): `GET /v1/rooms`,
// `GET /v1/rooms/{roomId}`, `.../members`, `.../state`.
import type { Router } from "../../app/http/router.js";
import { paramOf, queryInt, queryString } from "../../client-api/http.js";
import { queryChoice } from "./query.js";
import { ROOM_ORDERS, type RoomAdmin } from "./room-admin.js";

/** Synapse's default page size for the admin lists. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;

export function mountRoomRoutes(router: Router, rooms: RoomAdmin): void {
  // GET /v1/rooms
  router.get("/v1/rooms", async (req, res) => {
    const searchTerm = queryString(req, "search_term");
    res.json(
      await rooms.list({
        from: queryInt(req, "from", 0),
        limit: queryInt(req, "limit", DEFAULT_LIMIT, MAX_LIMIT),
        orderBy: queryChoice(req, "order_by", ROOM_ORDERS, "name"),
        dir: queryChoice(req, "dir", ["f", "b"] as const, "f"),
        ...(searchTerm !== undefined ? { searchTerm } : {}),
      }),
    );
  });

  // GET /v1/rooms/{roomId}
  router.get("/v1/rooms/:roomId", async (req, res) => {
    res.json(await rooms.get(paramOf(req, "roomId")));
  });

  // GET /v1/rooms/{roomId}/members
  router.get("/v1/rooms/:roomId/members", async (req, res) => {
    const members = await rooms.members(paramOf(req, "roomId"));
    res.json({ members, total: members.length });
  });

  // GET /v1/rooms/{roomId}/state
  router.get("/v1/rooms/:roomId/state", async (req, res) => {
    res.json({ state: await rooms.state(paramOf(req, "roomId")) });
  });
}
