// GET /_matrix/client/v3/sync (Client-Server API "Syncing").
import type { Request, Response, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { parseSyncToken } from "../../rooms/tokens.js";
import type { ClientApiContext } from "../contracts.js";
import { queryInt, queryString, requesterOf, requireAuth } from "../http.js";
import type { SyncRequest } from "./build-response.js";
import type { SyncClient, SyncEngine } from "./engine.js";
import { SyncFilterCache } from "./filter.js";

export function mountSyncRoute(router: Router, ctx: ClientApiContext, sync: SyncEngine): void {
  const filters = new SyncFilterCache(ctx.storage.filters);
  // GET /v3/sync
  router.get("/v3/sync", requireAuth(ctx.authenticator), async (req: Request, res: Response) => {
    const requester = requesterOf(res);
    const sinceRaw = queryString(req, "since");
    const since = sinceRaw === undefined ? undefined : parseSyncToken(sinceRaw);
    if (sinceRaw !== undefined && since === undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, "since is not a sync token of this server");
    const timeout = queryInt(req, "timeout", 0);
    const filter = await filters.resolve(requester.userId, queryString(req, "filter"));
    // A client that gives up on a long-poll closes the response (not the request: see notes).
    const client: SyncClient = {
      gone: () => res.closed,
      onGone: (listener) => void res.once("close", () => !res.writableFinished && listener()),
    };
    const request: SyncRequest = { userId: requester.userId, deviceId: requester.deviceId, filter, fullState: queryString(req, "full_state") === "true" };
    if (since) request.since = since;
    const body = await sync.sync(request, timeout, client);
    if (!res.writableEnded && !res.closed) res.json(body);
  });
}
