// Bobbin's MLS endpoints under /_matrix/client/unstable/org.bobbin.mls (MLS wire contract section
// 5): the stapled commit, the stored GroupInfo (external joins), and departed users' devices.
import type { Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import { bodyOf, optionalString, paramOf, requesterOf, requireAuth, requireString, type TokenAuthenticator } from "../http.js";
import type { MlsCommits } from "./mls-commits.js";

export const MLS_PREFIX = "/unstable/org.bobbin.mls";

export function mountMlsRoutes(router: Router, commits: MlsCommits, authenticator: TokenAuthenticator, logger: Logger): void {
  const auth = requireAuth(authenticator);

  // POST /unstable/org.bobbin.mls/rooms/{roomId}/commit
  router.post(`${MLS_PREFIX}/rooms/:roomId/commit`, auth, async (req, res) => {
    const body = bodyOf(req);
    const commit = requireString(body, "commit");
    const groupInfo = requireString(body, "group_info");
    const welcome = optionalString(body, "welcome");
    const prevCommitEventId = optionalString(body, "prev_commit_event_id");
    if (commit.length === 0 || groupInfo.length === 0) throw new MatrixError(Errcode.BAD_JSON, 400, "commit and group_info must not be empty");
    const request = { commit, groupInfo, ...(welcome === undefined ? {} : { welcome }), ...(prevCommitEventId === undefined ? {} : { prevCommitEventId }) };
    res.json(await commits.submitCommit(requesterOf(res), paramOf(req, "roomId"), request, (res.locals.log as Logger | undefined) ?? logger));
  });

  // GET /unstable/org.bobbin.mls/rooms/{roomId}/group_info
  router.get(`${MLS_PREFIX}/rooms/:roomId/group_info`, auth, async (req, res) => {
    res.json(await commits.groupInfo(requesterOf(res), paramOf(req, "roomId")));
  });

  // GET /unstable/org.bobbin.mls/rooms/{roomId}/devices
  router.get(`${MLS_PREFIX}/rooms/:roomId/devices`, auth, async (req, res) => {
    res.json(await commits.devices(requesterOf(res), paramOf(req, "roomId")));
  });
}
