// GET /.well-known/matrix/server (LM draft "GET /.well-known/matrix/server"): the delegation other
// servers read before connecting, served only when `federation.well_known_server` is set.
import { Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";

/** Mounted at the root of the app (the path is not under `/_matrix`). */
export function wellKnownRoutes(settings: { wellKnownServer?: string | undefined }): Router {
  const router = new Router();
  // GET /.well-known/matrix/server
  router.get("/.well-known/matrix/server", (_req, res) => {
    if (settings.wellKnownServer === undefined) throw new MatrixError(Errcode.NOT_FOUND, 404, "No server delegation is configured");
    // Callers cache it for 24 hours by default; say so explicitly.
    res.setHeader("Cache-Control", "max-age=86400");
    res.json({ "m.server": settings.wellKnownServer });
  });
  return router;
}
