// `GET /_matrix/key/v2/server` (LM draft "GET /_matrix/key/v2/server"): our signed key response.
import { Router } from "../../app/http/router.js";
import type { KeyNotary } from "../keys/notary.js";

export function keyServerRoute(deps: { notary: KeyNotary }): Router {
  const router = new Router();
  // GET /_matrix/key/v2/server — unauthenticated
  router.get("/_matrix/key/v2/server", (_req, res) => {
    res.json(deps.notary.ownKeyResponse());
  });
  return router;
}
