// Accounts area of the Client-Server API: registration, login and tokens, devices, profiles,
// per-user data (account data, filters, push rules), end-to-end keys, to-device messages and the
// room and user directories. Each area is a service plus a route file; this module wires them.
import { Router } from "express";
import type { ClientApiContext, ProfilePropagator } from "../contracts.js";
import type { AuthService } from "./auth-service.js";
import { createDevices } from "./devices.js";
import { createDirectory } from "./directory.js";
import { createKeys } from "./keys.js";
import { createProfiles } from "./profiles.js";
import { accountRoutes } from "./routes/account.js";
import { capabilitiesRoutes } from "./routes/capabilities.js";
import { deviceRoutes } from "./routes/devices.js";
import { directoryRoutes } from "./routes/directory.js";
import { keysRoutes } from "./routes/keys.js";
import { loginRoutes } from "./routes/login.js";
import { profileRoutes } from "./routes/profile.js";
import { toDeviceRoutes } from "./routes/to-device.js";
import { userDataRoutes } from "./routes/user-data.js";
import { versionsRoutes } from "./routes/versions.js";
import { createSessions } from "./sessions.js";
import { createToDevice } from "./to-device.js";
import { createUia } from "./uia.js";
import { createUserData } from "./user-data.js";

export { createAuthService, hashAccessToken, type AuthService } from "./auth-service.js";

export interface AccountsOptions {
  registration: { enabled: boolean; allowGuests: boolean };
}

/** Routes for: versions, login, register, logout, whoami, capabilities, pushrules, filters, account data,
 *  profile, devices, keys, sendToDevice, directory, user_directory. Paths relative to /_matrix/client. */
export function accountsApi(ctx: ClientApiContext, auth: AuthService, profiles: ProfilePropagator, options: AccountsOptions): Router {
  const uia = createUia(ctx.now);
  const sessions = createSessions(ctx, auth, uia, options.registration);
  const { authenticator } = ctx;
  const router = Router();
  router.use(versionsRoutes());
  router.use(loginRoutes(sessions, authenticator));
  router.use(accountRoutes(sessions, authenticator));
  router.use(capabilitiesRoutes(authenticator));
  router.use(userDataRoutes(createUserData(ctx), authenticator));
  router.use(profileRoutes(createProfiles(ctx, profiles), authenticator));
  router.use(deviceRoutes(createDevices(ctx, sessions), authenticator));
  router.use(keysRoutes(createKeys(ctx), authenticator));
  router.use(toDeviceRoutes(createToDevice(ctx), authenticator, ctx.logger));
  router.use(directoryRoutes(createDirectory(ctx), authenticator));
  return router;
}
