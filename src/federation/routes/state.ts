// GET /_matrix/federation/v1/state/:roomId?event_id=… and GET /_matrix/federation/v1/state_ids/:roomId?event_id=…
import type { RequestHandler, Router } from "../../app/http/router.js";
import type { EventReader } from "./event-reader.js";
import { requiredQueryString } from "./query-params.js";

export function mountStateRoutes(router: Router, auth: RequestHandler, reader: EventReader): void {
  router.get("/v1/state/:roomId", auth, async (req, res) => {
    const eventId = requiredQueryString(req, "event_id");
    const { pdus, authChain } = await reader.stateAt(res.locals.origin as string, req.params.roomId as string, eventId);
    res.json({ pdus, auth_chain: authChain });
  });
  router.get("/v1/state_ids/:roomId", auth, async (req, res) => {
    const eventId = requiredQueryString(req, "event_id");
    const { pduIds, authChainIds } = await reader.stateIdsAt(res.locals.origin as string, req.params.roomId as string, eventId);
    res.json({ pdu_ids: pduIds, auth_chain_ids: authChainIds });
  });
}
