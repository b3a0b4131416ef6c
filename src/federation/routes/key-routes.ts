// The key exchange routes, mounted at the root: `GET /_matrix/key/v2/server`, `GET /_matrix/key/v2/query/{serverName}`, `POST /_matrix/key/v2/query`.
import { Router } from "../../app/http/router.js";
import type { KeyNotary } from "../keys/notary.js";
import { keyQueryServerRoute } from "./key-query-server.js";
import { keyQueryRoute } from "./key-query.js";
import { keyServerRoute } from "./key-server.js";

/** Unauthenticated (LM draft: "Authentication required: No"); `Authorization` headers are ignored. */
export function keyRoutes(deps: { notary: KeyNotary }): Router {
  const router = new Router();
  router.use(keyServerRoute(deps), keyQueryServerRoute(deps), keyQueryRoute(deps));
  return router;
}
