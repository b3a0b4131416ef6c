// Rate limits on every Client-Server API request (issue 7 "Rate limiting per user, per IP and per
// origin server"; Client-Server API "Rate limiting": 429 M_LIMIT_EXCEEDED with retry_after_ms).
// Two buckets of rate-limit.ts: `per_ip`, taken by a middleware in front of every route, and
// `per_user`, taken when an access token has been resolved to its user. A requester with
// `exemptFromRateLimits` (an application service registered with `rate_limited: false`,
// Application Service API "Registration") is exempt from both.
import type { NextFunction, Request, Response } from "../app/http/router.js";
import { Errcode, MatrixError } from "../core/errors.js";
import { accessTokenOf, type RateLimiter, type TokenAuthenticator } from "./http.js";

export const PER_USER_BUCKET = "per_user";
export const PER_IP_BUCKET = "per_ip";

function isLimitExceeded(error: unknown): boolean {
  return error instanceof MatrixError && error.errcode === Errcode.LIMIT_EXCEEDED;
}

/**
 * Middleware: one `per_ip` token per request, keyed by `req.ip` (the connection's address, or the
 * address a trusted proxy reports: app/http-app.ts, through proxy-addr, from config `trusted_proxies`).
 * Only when the bucket is empty is the request's access token looked up, to let an exempt
 * requester through: the common path costs no token lookup, and a flood is refused before any.
 */
export function limitRequestsPerIp(limiter: RateLimiter, authenticator: TokenAuthenticator) {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const ip = req.ip ?? "";
    try {
      limiter.take(PER_IP_BUCKET, ip);
    } catch (error) {
      if (!isLimitExceeded(error) || !(await isExempt(req, authenticator, ip))) throw error;
    }
    next();
  };
}

async function isExempt(req: Request, authenticator: TokenAuthenticator, ip: string): Promise<boolean> {
  const token = accessTokenOf(req);
  if (token === undefined) return false;
  const userIdParam = typeof req.query.user_id === "string" ? req.query.user_id : undefined;
  try {
    const requester = await authenticator.authenticate(token, { userIdParam, ip });
    return requester?.exemptFromRateLimits === true;
  } catch {
    // A token that does not authenticate (deactivated user, bad user_id) is not exempt; the
    // request is refused for its rate, not for its token.
    return false;
  }
}

/**
 * The authenticator `requireAuth` uses, taking one `per_user` token for each request it
 * authenticates: every authenticated route is limited without each one naming the limit.
 */
export function limitRequestsPerUser(authenticator: TokenAuthenticator, limiter: RateLimiter): TokenAuthenticator {
  return {
    async authenticate(accessToken, request) {
      const requester = await authenticator.authenticate(accessToken, request);
      if (requester && !requester.exemptFromRateLimits) limiter.take(PER_USER_BUCKET, requester.userId);
      return requester;
    },
  };
}
