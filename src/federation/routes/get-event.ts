// GET /_matrix/federation/v2/event/:eventId, its unstable LM name, and classic GET /v1/event/:eventId
import type { RequestHandler, Router } from "../../app/http/router.js";
import type { EventReader } from "./event-reader.js";
import { LM_UNSTABLE } from "../paths.js";

export function mountGetEventRoutes(router: Router, auth: RequestHandler, reader: EventReader, deps: { serverName: string; now: () => number }): void {
  // LM draft "GET /_matrix/federation/v2/event/:eventId": the body is the event itself.
  router.get([`${LM_UNSTABLE}/event/:eventId`, "/v2/event/:eventId"], auth, async (req, res) => {
    res.json(await reader.event(res.locals.origin as string, req.params.eventId as string));
  });
  // Matrix Server-Server API "GET /_matrix/federation/v1/event/{eventId}": a one-PDU transaction.
  router.get("/v1/event/:eventId", auth, async (req, res) => {
    const pdu = await reader.event(res.locals.origin as string, req.params.eventId as string);
    res.json({ origin: deps.serverName, origin_server_ts: deps.now(), pdus: [pdu] });
  });
}
