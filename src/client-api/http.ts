// The small HTTP kit every Client-Server API route file uses: authentication middleware, input
// readers that answer with the spec's errcodes, and the error handlers (Matrix Client-Server API
// "API standards": errors are `{errcode, error}` JSON; unknown endpoints 404 M_UNRECOGNIZED,
// a known path with the wrong method 405 M_UNRECOGNIZED).
import { unrecognized } from "../app/http/dispatch.js";
import type { NextFunction, Request, Response } from "../app/http/router.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";

/** Who is making an authenticated request. */
export interface Requester {
  userId: string;
  deviceId: string;
  isGuest: boolean;
  isAdmin: boolean;
  /** Set when an application service's token made the request (masquerading as `userId`). */
  appserviceId?: string;
  /** Set for an application service registered with `rate_limited: false`: rate limits do not apply. */
  exemptFromRateLimits?: boolean;
  /** SHA-256 hex of the access token used (for logout). */
  tokenHash: string;
}

/** Resolves an access token; implemented by the auth service. */
export interface TokenAuthenticator {
  /** undefined: no such token (M_UNKNOWN_TOKEN). Throws MatrixError for deactivated/expired. */
  authenticate(accessToken: string, request: { userIdParam?: string; deviceIdParam?: string; ip: string }): Promise<Requester | undefined>;
}

/** Counts attempts per key; implemented in rate-limit.ts, configured from the config file. */
export interface RateLimiter {
  /** Throws MatrixError(M_LIMIT_EXCEEDED, 429, ..., {retry_after_ms}) when over the limit. */
  take(bucket: string, key: string): void;
}

/** The access token of a request: `Authorization: Bearer`, or the deprecated `access_token` query parameter. */
export function accessTokenOf(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (typeof header === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? match[1] : undefined;
  }
  const query = req.query.access_token;
  return typeof query === "string" && query.length > 0 ? query : undefined;
}

/** Middleware: requires a valid access token; the requester is then in `res.locals.requester`. */
export function requireAuth(authenticator: TokenAuthenticator) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const token = accessTokenOf(req);
    if (token === undefined) throw new MatrixError(Errcode.MISSING_TOKEN, 401, "Missing access token");
    const userIdParam = typeof req.query.user_id === "string" ? req.query.user_id : undefined;
    // Application services name the device with `device_id` (MSC3202's unstable name, which mautrix bridges send, too).
    const deviceParam = req.query.device_id ?? req.query["org.matrix.msc3202.device_id"];
    const deviceIdParam = typeof deviceParam === "string" ? deviceParam : undefined;
    const requester = await authenticator.authenticate(token, { userIdParam, deviceIdParam, ip: req.ip ?? "" });
    if (!requester) throw new MatrixError(Errcode.UNKNOWN_TOKEN, 401, "Unknown access token", { soft_logout: false });
    res.locals.requester = requester;
    next();
  };
}

/** The requester set by requireAuth. */
export function requesterOf(res: Response): Requester {
  const requester = res.locals.requester as Requester | undefined;
  if (!requester) throw new Error("route is missing requireAuth");
  return requester;
}

/** The JSON object body of a request (M_NOT_JSON when absent or not an object). */
export function bodyOf(req: Request): JsonObject {
  const body: unknown = req.body;
  if (!isJsonObject(body)) throw new MatrixError(Errcode.NOT_JSON, 400, "Content not JSON: expected a JSON object");
  return body;
}

/** A decoded path parameter (the router decodes percent-escapes already). */
export function paramOf(req: Request, name: string): string {
  const value: unknown = req.params[name];
  if (typeof value !== "string" || value.length === 0) throw new MatrixError(Errcode.MISSING_PARAM, 400, `Missing path parameter ${name}`);
  return value;
}

export function requireString(body: JsonObject, key: string): string {
  const value = body[key];
  if (value === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, `Missing parameter: ${key}`);
  if (typeof value !== "string") throw new MatrixError(Errcode.INVALID_PARAM, 400, `${key} must be a string`);
  return value;
}

export function optionalString(body: JsonObject, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new MatrixError(Errcode.INVALID_PARAM, 400, `${key} must be a string`);
  return value;
}

export function optionalObject(body: JsonObject, key: string): JsonObject | undefined {
  const value: JsonValue | undefined = body[key];
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${key} must be an object`);
  return value;
}

export function optionalBoolean(body: JsonObject, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw new MatrixError(Errcode.INVALID_PARAM, 400, `${key} must be a boolean`);
  return value;
}

/** A non-negative integer query parameter, or `fallback`; M_INVALID_PARAM when malformed. */
export function queryInt(req: Request, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = req.query[name];
  if (raw === undefined) return fallback;
  if (typeof raw !== "string" || !/^[0-9]+$/.test(raw)) throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} must be a non-negative integer`);
  return Math.min(Number(raw), max);
}

export function queryString(req: Request, name: string): string | undefined {
  const raw = req.query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== "string") throw new MatrixError(Errcode.INVALID_PARAM, 400, `${name} must be given once`);
  return raw;
}

/**
 * Final middleware of a router: a path some route serves with another method answers 405, any
 * other path 404, both with M_UNRECOGNIZED.
 */
export function unrecognizedRequest(req: Request, _res: Response, next: NextFunction): void {
  next(unrecognized(req));
}
