// GET /_matrix/federation/v1/query/directory?room_alias=…
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { LocalQueries } from "../queries.js";

export function mountQueryDirectoryRoute(router: Router, auth: RequestHandler, queries: LocalQueries): void {
  router.get("/v1/query/directory", auth, async (req, res) => {
    const alias = req.query.room_alias;
    if (typeof alias !== "string") throw new MatrixError(Errcode.MISSING_PARAM, 400, "room_alias is required");
    res.json(await queries.directory(alias));
  });
}
