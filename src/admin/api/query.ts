// Query parameters of the admin API, read the way Synapse's admin API reads them, so existing
// tools' requests mean the same here.
import type { Request } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";
import { queryString } from "../../client-api/http.js";

/** `true` or `false`, else `fallback` when absent; anything else is M_INVALID_PARAM. */
export function queryBoolean(req: Request, name: string, fallback: boolean): boolean {
  const raw = queryString(req, name);
  if (raw === undefined) return fallback;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} must be true or false`);
}

/** One of `allowed`, else `fallback` when absent; anything else is M_INVALID_PARAM. */
export function queryChoice<T extends string>(req: Request, name: string, allowed: readonly T[], fallback: T): T {
  const raw = queryString(req, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Unknown value for ${name}: ${raw}`);
  return raw as T;
}
