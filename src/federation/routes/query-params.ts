// Query parameters of federation requests: present once, well-formed, or a 400 naming the problem.
import type { Request } from "../../app/http/router.js";
import { Errcode, MatrixError } from "../../core/errors.js";

/** A required query parameter given exactly once: M_MISSING_PARAM when absent, M_INVALID_PARAM when repeated or empty. */
export function requiredQueryString(req: Request, name: string): string {
  const raw: unknown = req.query[name];
  if (raw === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, `${name} is required`);
  if (typeof raw !== "string" || raw.length === 0) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} must be given once, not empty`);
  return raw;
}

/** A required non-negative integer query parameter. */
export function requiredQueryInt(req: Request, name: string): number {
  const raw = requiredQueryString(req, name);
  if (!/^[0-9]{1,15}$/.test(raw)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} must be a non-negative integer`);
  return Number(raw);
}
