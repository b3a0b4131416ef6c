// `POST /_matrix/key/v2/query` (LM draft "POST /_matrix/key/v2/query"): several servers' keys, co-signed.
import { Router } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { isValidKeyId, isValidServerName } from "../../core/identifiers.js";
import { isJsonObject } from "../../core/json.js";
import type { KeyNotary, ServerKeyQuery } from "../keys/notary.js";

/** Bounds on one bulk query, so that one request cannot make us fetch from the whole federation. */
const MAX_SERVERS = 100;
const MAX_KEY_IDS = 1000;

export function keyQueryRoute(deps: { notary: KeyNotary }): Router {
  const router = new Router();
  // POST /_matrix/key/v2/query — unauthenticated
  router.post("/_matrix/key/v2/query", async (req, res) => {
    res.json({ server_keys: await deps.notary.query(parseKeyQuery(req.body)) });
  });
  return router;
}

/** `{server_keys: {<server>: {<key id>: {minimum_valid_until_ts?}}}}`; no servers → no responses. */
function parseKeyQuery(body: unknown): ServerKeyQuery[] {
  if (!isJsonObject(body)) throw new MatrixError(Errcode.NOT_JSON, 400, "Content not JSON: expected a JSON object");
  const serverKeys = body.server_keys;
  if (!isJsonObject(serverKeys)) throw new MatrixError(Errcode.BAD_JSON, 400, "server_keys is required and must be an object");
  const servers = Object.entries(serverKeys);
  if (servers.length > MAX_SERVERS) throw new MatrixError(Errcode.INVALID_PARAM, 400, `server_keys may name at most ${MAX_SERVERS} servers`);
  let keyIdCount = 0;
  return servers.map(([serverName, keys]): ServerKeyQuery => {
    if (!isValidServerName(serverName)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${JSON.stringify(serverName)} is not a valid server name`);
    if (!isJsonObject(keys)) throw new MatrixError(Errcode.BAD_JSON, 400, `server_keys.${serverName} must be an object of key IDs`);
    const keyIds = new Map<string, number | undefined>();
    for (const [keyId, criteria] of Object.entries(keys)) {
      if (++keyIdCount > MAX_KEY_IDS) throw new MatrixError(Errcode.INVALID_PARAM, 400, `server_keys may name at most ${MAX_KEY_IDS} key IDs`);
      if (!isValidKeyId(keyId)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${JSON.stringify(keyId)} is not an ed25519 key ID`);
      if (!isJsonObject(criteria)) throw new MatrixError(Errcode.BAD_JSON, 400, `server_keys.${serverName}.${keyId} must be an object`);
      const minimum = criteria.minimum_valid_until_ts;
      if (minimum !== undefined && (typeof minimum !== "number" || !Number.isSafeInteger(minimum) || minimum < 0)) {
        throw new MatrixError(Errcode.INVALID_PARAM, 400, "minimum_valid_until_ts must be a timestamp in milliseconds");
      }
      keyIds.set(keyId, minimum);
    }
    return { serverName, keyIds };
  });
}
