// The LM draft's "Event and State APIs": single events, room state at an event, and backfill,
// each served as the requesting server may see the room (./server-visibility.ts).
import type { RequestHandler, Router } from "../../app/http/router.js";
import type { Storage } from "../../storage/ports.js";
import { mountBackfillRoutes } from "./backfill.js";
import { createEventReader } from "./event-reader.js";
import { mountGetEventRoutes } from "./get-event.js";
import { mountStateRoutes } from "./state.js";

export function mountEventAndStateRoutes(api: Router, auth: RequestHandler, deps: { storage: Storage; serverName: string; now: () => number }): void {
  const reader = createEventReader(deps);
  mountGetEventRoutes(api, auth, reader, deps);
  mountStateRoutes(api, auth, reader);
  mountBackfillRoutes(api, auth, reader);
}
