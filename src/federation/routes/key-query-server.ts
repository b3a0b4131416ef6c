// `GET /_matrix/key/v2/query/{serverName}` (LM draft "GET /_matrix/key/v2/query/:serverName"): one server's keys, co-signed.
import { Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidServerName } from "../../core/identifiers.js";
import type { KeyNotary } from "../keys/notary.js";

export function keyQueryServerRoute(deps: { notary: KeyNotary }): Router {
  const router = new Router();
  // GET /_matrix/key/v2/query/{serverName}?minimum_valid_until_ts=… — unauthenticated
  router.get("/_matrix/key/v2/query/:serverName", async (req, res) => {
    const serverName = req.params.serverName;
    if (typeof serverName !== "string" || !isValidServerName(serverName)) {
      throw new MatrixError(Errcode.INVALID_PARAM, 400, "serverName is not a valid server name");
    }
    const raw = req.query.minimum_valid_until_ts;
    let minimumValidUntilTs: number | undefined;
    if (raw !== undefined) {
      if (typeof raw !== "string" || !/^[0-9]{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new MatrixError(Errcode.INVALID_PARAM, 400, "minimum_valid_until_ts must be a timestamp in milliseconds, given once");
      }
      minimumValidUntilTs = Number(raw);
    }
    const query = { serverName, keyIds: new Map<string, number | undefined>(), ...(minimumValidUntilTs !== undefined ? { minimumValidUntilTs } : {}) };
    res.json({ server_keys: await deps.notary.query([query]) });
  });
  return router;
}
