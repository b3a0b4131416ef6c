// Accounts area of the Client-Server API. STUB: being implemented (issue 3).
import { Router } from "express";
import type { ClientApiContext, ProfilePropagator } from "../contracts.js";
import type { TokenAuthenticator } from "../http.js";

/** Registration, login, tokens and devices; also what the CLI's register-user uses. */
export interface AuthService extends TokenAuthenticator {
  /** Creates an account (open registration or not: callers decide policy). Throws M_USER_IN_USE / M_INVALID_USERNAME. */
  registerUser(options: { localpart: string; password: string | null; admin?: boolean; guest?: boolean; appserviceId?: string }): Promise<{ userId: string }>;
  /** A new device (or an existing one by ID) with a fresh access token. */
  createSession(userId: string, options?: { deviceId?: string; initialDeviceDisplayName?: string }): Promise<{ accessToken: string; deviceId: string }>;
}

export interface AccountsOptions {
  registration: { enabled: boolean; allowGuests: boolean };
}

export function createAuthService(_deps: { storage: ClientApiContext["storage"]; now: () => number; serverName: string }): AuthService {
  throw new Error("not implemented");
}

/** Routes for: versions, login, register, logout, whoami, capabilities, pushrules, filters, account data,
 *  profile, devices, keys, sendToDevice, directory, user_directory. Paths relative to /_matrix/client. */
export function accountsApi(_ctx: ClientApiContext, _auth: AuthService, _profiles: ProfilePropagator, _options: AccountsOptions): Router {
  return Router();
}
