// `GET/PUT/DELETE /v3/directory/room/{roomAlias}`, `GET/PUT /v3/directory/list/room/{roomId}`,
// `GET/POST /v3/publicRooms`, `POST /v3/user_directory/search`.
import type { Router } from "../../../app/http/router.js";
import { Errcode, MatrixError } from "../../../core/errors.js";
import { isValidRoomId } from "../../../core/identifiers.js";
import { isJsonObject } from "../../../core/json.js";
import type { TokenAuthenticator } from "../../http.js";
import { bodyOf, optionalString, paramOf, queryInt, queryString, requesterOf, requireAuth, requireString } from "../../http.js";
import type { Directory } from "../directory.js";
import { forbidGuest } from "./guards.js";

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;

function limitOf(value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new MatrixError(Errcode.INVALID_PARAM, 400, "limit must be a non-negative integer");
  return Math.min(Math.max(value, 1), MAX_LIMIT);
}

export function mountDirectoryRoutes(router: Router, directory: Directory, authenticator: TokenAuthenticator): void {
  const auth = requireAuth(authenticator);

  // PUT /v3/directory/room/{roomAlias}
  router.put("/v3/directory/room/:roomAlias", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    const roomId = requireString(bodyOf(req), "room_id");
    if (!isValidRoomId(roomId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, "Invalid room ID");
    await directory.createAlias(requester, paramOf(req, "roomAlias"), roomId);
    res.json({});
  });

  // GET /v3/directory/room/{roomAlias}
  router.get("/v3/directory/room/:roomAlias", async (req, res) => {
    res.json(await directory.resolveAlias(paramOf(req, "roomAlias")));
  });

  // DELETE /v3/directory/room/{roomAlias}
  router.delete("/v3/directory/room/:roomAlias", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    await directory.deleteAlias(requester, paramOf(req, "roomAlias"));
    res.json({});
  });

  // GET /v3/directory/list/room/{roomId}
  router.get("/v3/directory/list/room/:roomId", async (req, res) => {
    res.json({ visibility: await directory.getVisibility(paramOf(req, "roomId")) });
  });

  // PUT /v3/directory/list/room/{roomId}
  router.put("/v3/directory/list/room/:roomId", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    const visibility = optionalString(bodyOf(req), "visibility") ?? "public";
    if (visibility !== "public" && visibility !== "private") throw new MatrixError(Errcode.INVALID_PARAM, 400, "visibility must be public or private");
    await directory.setVisibility(requester, paramOf(req, "roomId"), visibility);
    res.json({});
  });

  // GET /v3/publicRooms
  router.get("/v3/publicRooms", async (req, res) => {
    const since = queryString(req, "since");
    const limit = Math.max(1, queryInt(req, "limit", DEFAULT_LIMIT, MAX_LIMIT));
    res.json(await directory.publicRooms({ limit, ...(since !== undefined ? { since } : {}) }));
  });

  // POST /v3/publicRooms
  router.post("/v3/publicRooms", auth, async (req, res) => {
    const body = bodyOf(req);
    const since = optionalString(body, "since");
    const filter = body.filter;
    if (filter !== undefined && filter !== null && !isJsonObject(filter)) throw new MatrixError(Errcode.BAD_JSON, 400, "filter must be an object");
    const term = isJsonObject(filter) ? optionalString(filter, "generic_search_term") : undefined;
    res.json(
      await directory.publicRooms({
        limit: limitOf(body.limit, DEFAULT_LIMIT),
        ...(since !== undefined ? { since } : {}),
        ...(term !== undefined && term !== "" ? { searchTerm: term } : {}),
      }),
    );
  });

  // POST /v3/user_directory/search
  router.post("/v3/user_directory/search", auth, async (req, res) => {
    const requester = requesterOf(res);
    forbidGuest(requester);
    const body = bodyOf(req);
    const term = requireString(body, "search_term");
    res.json(await directory.searchUsers(requester, term, limitOf(body.limit, 10)));
  });
}
