// The per-origin rate limit of the Federation API (issue 7; the LM draft marks endpoints
// "Rate-limited: Yes", Server-Server API "Rate limiting" in the Client-Server sense: 429
// M_LIMIT_EXCEEDED with retry_after_ms). Keyed by the origin X-Matrix authentication proved, so
// a server cannot spend another's budget, and taken after it, so unauthenticated junk costs none.
import type { NextFunction, Request, RequestHandler, Response } from "../../app/http/router.js";
import type { RateLimiter } from "../../client-api/http.js";

export const PER_ORIGIN_BUCKET = "per_origin";

/** `authenticate` (requireFederationAuth), then one `per_origin` token of the proven origin. */
export function limitPerOrigin(authenticate: RequestHandler, limiter: RateLimiter): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    void authenticate(req, res, (error?: unknown) => {
      if (error !== undefined) {
        next(error);
        return;
      }
      try {
        limiter.take(PER_ORIGIN_BUCKET, res.locals.origin as string);
      } catch (limited) {
        next(limited);
        return;
      }
      next();
    });
  };
}
