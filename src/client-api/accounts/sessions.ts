// Registration, login, logout and account management: the policy around AuthService (who may
// register, rate limits, UIA, which devices a logout removes).
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonObject } from "../../core/json.js";
import type { ClientApiContext, ProfilePropagator } from "../contracts.js";
import type { Requester } from "../http.js";
import type { AuthService } from "./auth-service.js";
import { deleteDevices } from "./device-lists.js";
import type { Uia } from "./uia.js";
import { localpartOfUsername, localUserIdOf } from "./usernames.js";

export interface RegistrationPolicy {
  enabled: boolean;
  allowGuests: boolean;
}

export interface RegisterRequest {
  kind: "user" | "guest";
  username?: string;
  password?: string;
  deviceId?: string;
  initialDeviceDisplayName?: string;
  inhibitLogin: boolean;
  auth: JsonObject | undefined;
  /** The body's `type`: `m.login.application_service` registers a user of a service's namespace. */
  type?: string;
  /** The request's access token: a service's `as_token` for `m.login.application_service`. */
  accessToken?: string;
}

export interface LoginRequest {
  /** The user ID or localpart the identifier named. */
  user: string;
  password: string;
  deviceId?: string;
  initialDeviceDisplayName?: string;
}

export interface SessionResponse {
  user_id: string;
  access_token?: string;
  device_id?: string;
  home_server?: string;
}

export const REGISTRATION_FLOWS = [["m.login.dummy"]];
export const PASSWORD_FLOWS = [["m.login.password"]];

export interface Sessions {
  register(request: RegisterRequest, ip: string): Promise<SessionResponse>;
  /** M_INVALID_USERNAME / M_USER_IN_USE unless `username` could be registered now. */
  checkUsernameAvailable(username: string): Promise<void>;
  login(request: LoginRequest, ip: string): Promise<Required<SessionResponse>>;
  /** `m.login.application_service` login: a session for a user of the service whose `as_token` is given. */
  loginAppservice(request: Omit<LoginRequest, "password"> & { accessToken: string | undefined }): Promise<Required<SessionResponse>>;
  logout(requester: Requester): Promise<void>;
  logoutAll(requester: Requester): Promise<void>;
  changePassword(requester: Requester, newPassword: string, logoutDevices: boolean, auth: JsonObject | undefined): Promise<void>;
  deactivate(requester: Requester, auth: JsonObject | undefined): Promise<void>;
  /** UIA with `m.login.password` for the requester (delete devices, password change, deactivate). */
  requirePassword(requester: Requester, purpose: string, auth: JsonObject | undefined): Promise<void>;
}

export function createSessions(ctx: ClientApiContext, auth: AuthService, uia: Uia, policy: RegistrationPolicy, rooms?: ProfilePropagator): Sessions {
  const { serverName } = ctx;

  async function startSession(userId: string, deviceId: string | undefined, displayName: string | undefined): Promise<Required<SessionResponse>> {
    const session = await auth.createSession(userId, {
      ...(deviceId !== undefined ? { deviceId } : {}),
      ...(displayName !== undefined ? { initialDeviceDisplayName: displayName } : {}),
    });
    return { user_id: userId, access_token: session.accessToken, device_id: session.deviceId, home_server: serverName };
  }

  /** The service an `m.login.application_service` request's token names (401 as for any bad token). */
  function appserviceOf(accessToken: string | undefined): { id: string } {
    if (accessToken === undefined) throw new MatrixError(Errcode.MISSING_TOKEN, 401, "m.login.application_service needs the application service's as_token");
    const service = auth.appservices?.byToken(accessToken);
    if (!service) throw new MatrixError(Errcode.UNKNOWN_TOKEN, 401, "Unknown application service token", { soft_logout: false });
    return service;
  }

  /** Application Service API "Server admin style permissions": no UIA, no password, only inside its namespaces. */
  async function registerAppserviceUser(request: RegisterRequest): Promise<SessionResponse> {
    const service = appserviceOf(request.accessToken);
    if (request.username === undefined) throw new MatrixError(Errcode.MISSING_PARAM, 400, "Missing parameter: username");
    const localpart = localpartOfUsername(request.username, serverName);
    const refusal = auth.appservices?.userClaimRefusal(`@${localpart}:${serverName}`, service.id);
    if (refusal !== undefined) throw new MatrixError(Errcode.EXCLUSIVE, 400, refusal);
    const { userId } = await auth.registerUser({ localpart, password: null, appserviceId: service.id });
    if (request.inhibitLogin) return { user_id: userId, home_server: serverName };
    return startSession(userId, request.deviceId, request.initialDeviceDisplayName);
  }

  async function checkUsernameAvailable(username: string): Promise<string> {
    const localpart = localpartOfUsername(username, serverName);
    // Exclusive namespaces of application services are theirs alone (M_EXCLUSIVE).
    const refusal = auth.appservices?.userClaimRefusal(`@${localpart}:${serverName}`, undefined);
    if (refusal !== undefined) throw new MatrixError(Errcode.EXCLUSIVE, 400, refusal);
    if (!(await auth.isLocalpartAvailable(localpart))) throw new MatrixError(Errcode.USER_IN_USE, 400, "User ID already taken");
    return localpart;
  }

  /** The `m.login.password` stage: the identifier must name the requester. */
  async function passwordStageFor(requester: Requester, authDict: JsonObject): Promise<boolean> {
    const named = identifiedUser(authDict);
    if (named === undefined || localUserIdOf(named, serverName) !== requester.userId) return false;
    const password = authDict.password;
    if (typeof password !== "string") return false;
    try {
      await auth.checkPassword(requester.userId, password);
      return true;
    } catch (error) {
      if (error instanceof MatrixError && error.httpStatus === 403) return false;
      throw error;
    }
  }

  async function requirePassword(requester: Requester, purpose: string, authDict: JsonObject | undefined): Promise<void> {
    // Application services registered with `rate_limited: false` are exempt from every client limit.
    if (!requester.exemptFromRateLimits) ctx.rateLimiter.take("login", `user:${requester.userId}`);
    await uia.authenticate({
      purpose,
      userId: requester.userId,
      auth: authDict,
      flows: PASSWORD_FLOWS,
      verify: async (stage, dict) => stage === "m.login.password" && passwordStageFor(requester, dict),
    });
  }

  return {
    async register(request, ip) {
      if (request.type === "m.login.application_service" && request.kind === "user") return registerAppserviceUser(request);
      if (request.kind === "guest") {
        if (!policy.allowGuests) throw new MatrixError(Errcode.FORBIDDEN, 403, "Guest access is disabled");
        ctx.rateLimiter.take("register", ip);
        // Guests: everything but the device display name is ignored (spec `POST /register`).
        const { userId } = await auth.registerGeneratedUser({ password: null, guest: true });
        return startSession(userId, undefined, request.initialDeviceDisplayName);
      }
      if (!policy.enabled) throw new MatrixError(Errcode.FORBIDDEN, 403, "Registration is disabled");
      ctx.rateLimiter.take("register", ip);
      // Username problems are reported before UIA starts (spec `POST /register`, 400).
      if (request.username !== undefined) await checkUsernameAvailable(request.username);
      await uia.authenticate({ purpose: "register", userId: null, auth: request.auth, flows: REGISTRATION_FLOWS, verify: async (stage) => stage === "m.login.dummy" });
      const password = request.password ?? null;
      const { userId } =
        request.username !== undefined
          ? await auth.registerUser({ localpart: request.username, password })
          : await auth.registerGeneratedUser({ password });
      // Refresh tokens are optional for servers: a client asking for one simply gets none.
      if (request.inhibitLogin) return { user_id: userId, home_server: serverName };
      return startSession(userId, request.deviceId, request.initialDeviceDisplayName);
    },

    async checkUsernameAvailable(username) {
      await checkUsernameAvailable(username);
    },

    async login(request, ip) {
      ctx.rateLimiter.take("login", `ip:${ip}`);
      const userId = localUserIdOf(request.user, serverName);
      if (userId === undefined) throw new MatrixError(Errcode.FORBIDDEN, 403, "Invalid username or password");
      ctx.rateLimiter.take("login", `user:${userId}`);
      await auth.checkPassword(userId, request.password);
      return startSession(userId, request.deviceId, request.initialDeviceDisplayName);
    },

    async loginAppservice(request) {
      const service = appserviceOf(request.accessToken);
      const userId = localUserIdOf(request.user, serverName);
      if (userId === undefined || !auth.appservices?.ownsUser(service.id, userId)) throw new MatrixError(Errcode.EXCLUSIVE, 403, `${request.user} is outside the application service's namespaces`);
      if (!(await ctx.storage.accounts.getUser(userId))) throw new MatrixError(Errcode.FORBIDDEN, 403, `The application service has not registered ${userId}`);
      return startSession(userId, request.deviceId, request.initialDeviceDisplayName);
    },

    async logout(requester) {
      // Logging out deletes the device and its keys with the token (spec `POST /logout`).
      await deleteDevices(ctx, requester.userId, [requester.deviceId]);
    },

    async logoutAll(requester) {
      const devices = await ctx.storage.accounts.listDevices(requester.userId);
      await deleteDevices(ctx, requester.userId, devices.map((d) => d.deviceId));
      await ctx.storage.transaction((tx) => tx.accounts.deleteAccessTokensOfUser(requester.userId));
    },

    async changePassword(requester, newPassword, logoutDevices, authDict) {
      if (requester.isGuest) throw new MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, 403, "Guests cannot set a password");
      await requirePassword(requester, "account/password", authDict);
      await auth.setPassword(requester.userId, newPassword);
      if (logoutDevices) {
        const others = (await ctx.storage.accounts.listDevices(requester.userId)).filter((d) => d.deviceId !== requester.deviceId);
        await deleteDevices(ctx, requester.userId, others.map((d) => d.deviceId));
      }
    },

    async deactivate(requester, authDict) {
      if (requester.isGuest) throw new MatrixError(Errcode.GUEST_ACCESS_FORBIDDEN, 403, "Guests cannot deactivate their account");
      await requirePassword(requester, "account/deactivate", authDict);
      await ctx.storage.transaction((tx) => tx.accounts.updateUser(requester.userId, { deactivated: true, passwordHash: null }));
      // Client-Server API "Account deactivation": the server makes the user leave every room.
      await rooms?.leaveAllRooms(requester.userId);
      const devices = await ctx.storage.accounts.listDevices(requester.userId);
      await deleteDevices(ctx, requester.userId, devices.map((d) => d.deviceId));
      await ctx.storage.transaction((tx) => tx.accounts.deleteAccessTokensOfUser(requester.userId));
    },

    requirePassword,
  };
}

/** The user an `m.login.password` dict names: `identifier` of type `m.id.user`, or the deprecated `user`. */
export function identifiedUser(dict: JsonObject): string | undefined {
  const identifier = dict.identifier;
  if (identifier !== undefined && identifier !== null) {
    if (typeof identifier !== "object" || Array.isArray(identifier)) return undefined;
    return identifier.type === "m.id.user" && typeof identifier.user === "string" ? identifier.user : undefined;
  }
  return typeof dict.user === "string" ? dict.user : undefined;
}
