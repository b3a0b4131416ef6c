// Checks several accounts routes share.
import { Errcode, MatrixError } from "../../../core/errors.js";
import type { Requester } from "../../http.js";

/** Endpoints under `/user/{userId}/...` act only for the requester's own account. */
export function requireOwnUser(requester: Requester, userId: string, action: string): void {
  if (requester.userId !== userId) throw new MatrixError(Errcode.FORBIDDEN, 403, `Cannot ${action} for other users`);
}

/** Guests may use only the endpoints the spec lists for them (module "Guest Access"). */
export function forbidGuest(requester: Requester): void {
  if (requester.isGuest) throw new MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, 403, "Guest access is not allowed here");
}
