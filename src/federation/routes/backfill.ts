// GET /_matrix/federation/v2/backfill/:roomId?v=…&limit=… and its unstable LM name
import type { RequestHandler, Router } from "../../app/http/router.js";
import { MAX_BACKFILL_LIMIT, type EventReader } from "./event-reader.js";
import { LM_UNSTABLE } from "../paths.js";
import { requiredQueryInt, requiredQueryString } from "./query-params.js";

export function mountBackfillRoutes(router: Router, auth: RequestHandler, reader: EventReader): void {
  router.get([`${LM_UNSTABLE}/backfill/:roomId`, "/v2/backfill/:roomId"], auth, async (req, res) => {
    const v = requiredQueryString(req, "v");
    const limit = Math.min(requiredQueryInt(req, "limit"), MAX_BACKFILL_LIMIT);
    res.json({ pdus: await reader.backfill(res.locals.origin as string, req.params.roomId as string, v, limit) });
  });
}
