// GET /_matrix/federation/v1/query/profile?user_id=…&field=…
import type { RequestHandler, Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { LocalQueries, ProfileField } from "../queries.js";

export function mountQueryProfileRoute(router: Router, auth: RequestHandler, queries: LocalQueries): void {
  router.get("/v1/query/profile", auth, async (req, res) => {
    const userId = req.query.user_id;
    if (typeof userId !== "string") throw new MatrixError(Errcode.MISSING_PARAM, 400, "user_id is required");
    const field = req.query.field;
    if (field !== undefined && field !== "displayname" && field !== "avatar_url") {
      throw new MatrixError(Errcode.INVALID_PARAM, 400, "field must be displayname or avatar_url");
    }
    res.json(await queries.profile(userId, field as ProfileField | undefined));
  });
}
