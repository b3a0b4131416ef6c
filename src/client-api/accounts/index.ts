// Accounts area of the Client-Server API: registration, login and tokens, devices, profiles,
// per-user data (account data, filters, push rules), end-to-end keys, to-device messages and the
// room and user directories. Each area is a service plus a route file; this module wires them.
import type { Router } from "../../app/http/router.js";
import type { ClientApiContext, ProfilePropagator, RemoteDirectory, RemoteKeys, RemoteProfiles } from "../contracts.js";
import type { AuthService } from "./auth-service.js";
import { createDevices } from "./devices.js";
import { createDirectory } from "./directory.js";
import { createKeys } from "./keys.js";
import { createProfiles } from "./profiles.js";
import { mountAccountRoutes } from "./routes/account.js";
import { mountCapabilitiesRoutes } from "./routes/capabilities.js";
import { mountDeviceRoutes } from "./routes/devices.js";
import { mountDirectoryRoutes } from "./routes/directory.js";
import { mountKeysRoutes } from "./routes/keys.js";
import { mountLoginRoutes } from "./routes/login.js";
import { mountProfileRoutes } from "./routes/profile.js";
import { mountToDeviceRoutes } from "./routes/to-device.js";
import { mountUserDataRoutes } from "./routes/user-data.js";
import { mountVersionsRoutes } from "./routes/versions.js";
import { createSessions } from "./sessions.js";
import { createToDevice } from "./to-device.js";
import { createUia } from "./uia.js";
import { createUserData } from "./user-data.js";

export { createAuthService, hashAccessToken, type AuthService } from "./auth-service.js";
export { createKeys, type Keys } from "./keys.js";

export interface AccountsOptions {
  registration: { enabled: boolean; allowGuests: boolean };
  /** Profiles of users on other servers; without it they are 404. */
  remoteProfiles?: RemoteProfiles;
  /** Room aliases of other servers; without it they are 404. */
  remoteDirectory?: RemoteDirectory;
  /** End-to-end keys of users on other servers; without it their servers are `failures`. */
  remoteKeys?: RemoteKeys;
}

/** Routes for: versions, login, register, logout, whoami, capabilities, pushrules, filters, account data,
 *  profile, devices, keys, sendToDevice, directory, user_directory, registered on `router` with their
 *  paths relative to /_matrix/client. */
export function mountAccountsApi(router: Router, ctx: ClientApiContext, auth: AuthService, profiles: ProfilePropagator, options: AccountsOptions): void {
  const uia = createUia(ctx.now);
  const sessions = createSessions(ctx, auth, uia, options.registration, profiles);
  const { authenticator } = ctx;
  mountVersionsRoutes(router);
  mountLoginRoutes(router, sessions, authenticator);
  mountAccountRoutes(router, sessions, authenticator);
  mountCapabilitiesRoutes(router, authenticator);
  mountUserDataRoutes(router, createUserData(ctx), authenticator);
  mountProfileRoutes(router, createProfiles(ctx, profiles, options.remoteProfiles, auth.appservices), authenticator);
  mountDeviceRoutes(router, createDevices(ctx, sessions), authenticator);
  mountKeysRoutes(router, createKeys(ctx, options.remoteKeys), authenticator);
  mountToDeviceRoutes(router, createToDevice(ctx), authenticator, ctx.logger);
  mountDirectoryRoutes(router, createDirectory(ctx, options.remoteDirectory, auth.appservices), authenticator);
}
