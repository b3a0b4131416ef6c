// Who may call the admin API: server admins only (Synapse Admin API "Authenticate as a server
// admin"; issue 7). The access token is checked like the Client-Server API's, then the account's
// admin flag is read from the database, not from the token cache, so a demotion takes effect at once.
import type { NextFunction, Request, Response } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonValue } from "../../core/json.js";
import { requesterOf } from "../../client-api/http.js";
import type { Storage } from "../../storage/ports.js";

/** Middleware after requireAuth: 403 M_FORBIDDEN unless the requester is a server admin. */
export function requireServerAdmin(storage: Storage) {
  return async (_req: Request, res: Response, next: NextFunction): Promise<void> => {
    const requester = requesterOf(res);
    const user = await storage.accounts.getUser(requester.userId);
    if (!user || !user.isAdmin || user.deactivated) throw new MatrixError(Errcode.FORBIDDEN, 403, "You are not a server admin");
    next();
  };
}

/** The admin making the request (set by requireAuth, checked by requireServerAdmin). */
export function adminOf(res: Response): string {
  return requesterOf(res).userId;
}

/**
 * Every admin action that changes something is logged at info with who did it, to what, and the
 * change (issue 7: "every admin action is logged"). Secrets (passwords) are never passed here.
 */
export function logAdminAction(logger: Logger, admin: string, action: string, details: Record<string, JsonValue>): void {
  // The actor and action come last so no detail (such as a changed `admin` flag) can replace them.
  logger.info({ ...details, action, admin_user_id: admin }, `admin action: ${action}`);
}
