// GET /_matrix/client/v3/sync (Client-Server API "Syncing").
import type { Request, Response, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { parseSyncToken } from "../../rooms/tokens.js";
import type { ClientApiContext } from "../contracts.js";
import { queryInt, queryString, requesterOf, requireAuth } from "../http.js";
import type { SyncEngine } from "./engine.js";
import { resolveSyncFilter } from "./filter.js";

export function mountSyncRoute(router: Router, ctx: ClientApiContext, sync: SyncEngine): void {
  // GET /v3/sync
  router.get("/v3/sync", requireAuth(ctx.authenticator), async (req: Request, res: Response) => {
    const requester = requesterOf(res);
    const sinceRaw = queryString(req, "since");
    const since = sinceRaw === undefined ? undefined : parseSyncToken(sinceRaw);
    if (sinceRaw !== undefined && since === undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, "since is not a sync token of this server");
    const timeout = queryInt(req, "timeout", 0);
    const filter = await resolveSyncFilter(ctx.storage.filters, requester.userId, queryString(req, "filter"));
    // A client that gives up on a long-poll closes the response (not the request: see notes).
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const body = await sync.sync(
      { userId: requester.userId, deviceId: requester.deviceId, filter, fullState: queryString(req, "full_state") === "true", ...(since ? { since } : {}) },
      timeout,
      abort.signal,
    );
    if (!res.writableEnded && !abort.signal.aborted) res.json(body);
  });
}
