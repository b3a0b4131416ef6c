// Accounts, passwords and access tokens. Access tokens carry 256 random bits and are stored only
// as their SHA-256 (hex); passwords only as scrypt hashes (passwords.ts).
import { hash, randomBytes, randomInt } from "node:crypto";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { Storage } from "../../storage/ports.js";
import type { Requester, TokenAuthenticator } from "../http.js";
import { createDecoyHash, hashPassword, MAX_PASSWORD_LENGTH, verifyPassword, type ScryptParams } from "./passwords.js";
import { generateLocalpart, localpartOfUsername } from "./usernames.js";

/**
 * The application services of this server as the Client-Server API needs them (Application Service
 * API "Client-Server API Extensions"); implemented by src/appservice, injected by app/.
 */
export interface AppserviceAccess {
  /** The service whose `as_token` this is. */
  byToken(asToken: string): { id: string; senderUserId: string; rateLimited: boolean } | undefined;
  /** The user is the service's sender or in one of its user namespaces. */
  ownsUser(appserviceId: string, userId: string): boolean;
  ownsAlias(appserviceId: string, alias: string): boolean;
  /** Why the user may not be registered by the service (undefined: by anyone else); undefined when it may. */
  userClaimRefusal(userId: string, appserviceId: string | undefined): string | undefined;
  aliasClaimRefusal(alias: string, appserviceId: string | undefined): string | undefined;
  /** Asks the services holding the user in a namespace (they may create it); true when one answered 200. */
  queryUser(userId: string): Promise<boolean>;
  queryAlias(alias: string): Promise<boolean>;
}

/** Registration, login, tokens and devices; also what the CLI's register-user uses. */
export interface AuthService extends TokenAuthenticator {
  /** The server's application services, when any are registered. */
  readonly appservices?: AppserviceAccess;
  /** Creates an account (open registration or not: callers decide policy). Throws M_USER_IN_USE / M_INVALID_USERNAME. */
  registerUser(options: { localpart: string; password: string | null; admin?: boolean; guest?: boolean; appserviceId?: string }): Promise<{ userId: string }>;
  /** A new device (or an existing one by ID) with a fresh access token. */
  createSession(userId: string, options?: { deviceId?: string; initialDeviceDisplayName?: string }): Promise<{ accessToken: string; deviceId: string }>;
  /** Registers an account under a generated localpart (guests, registrations without a username). */
  registerGeneratedUser(options: { password: string | null; guest?: boolean }): Promise<{ userId: string }>;
  /** Whether `localpart` (already validated) is free. */
  isLocalpartAvailable(localpart: string): Promise<boolean>;
  /**
   * The `m.login.password` check of login and UIA: resolves when `password` is the user's,
   * 403 M_USER_DEACTIVATED for a deactivated account, 403 M_FORBIDDEN otherwise (unknown user,
   * no password, wrong password: the same answer, after the same work).
   */
  checkPassword(userId: string, password: string): Promise<void>;
  /** Replaces the user's password hash (null: no password login). */
  setPassword(userId: string, password: string | null): Promise<void>;
}

/** Device last-seen times are written at most this often per device. */
const LAST_SEEN_INTERVAL_MS = 60_000;
const MAX_TRACKED_DEVICES = 10_000;

/** Access tokens whose lookup is kept in memory (least recently used dropped first). */
const MAX_CACHED_TOKENS = 10_000;
/**
 * How long a cached lookup is trusted. Every revocation this process writes drops it at once
 * (Storage.onAccessRevoked); the limit bounds what another process writing the database could
 * leave stale.
 */
const TOKEN_CACHE_TTL_MS = 5 * 60_000;

/** A token's lookup as `authenticate` found it: the requester, and until when it is valid. */
interface CachedToken {
  requester: Requester;
  expiresTs: number | null;
  cachedTs: number;
}

export function hashAccessToken(token: string): string {
  return hash("sha256", token, "hex");
}

/** `syt_` and 256 random bits, URL-safe: the prefix lets secret scanners recognise the token. */
function generateAccessToken(): string {
  return `syt_${randomBytes(32).toString("base64url")}`;
}

const DEVICE_ID_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Ten capital letters; they fit the LM device ID grammar (device IDs double as key versions). */
function generateDeviceId(): string {
  let id = "";
  for (let i = 0; i < 10; i++) id += DEVICE_ID_LETTERS[randomInt(DEVICE_ID_LETTERS.length)];
  return id;
}

export function createAuthService(deps: { storage: Storage; now: () => number; serverName: string; scrypt?: ScryptParams; appservices?: AppserviceAccess }): AuthService {
  const { storage, now, serverName } = deps;
  /** `userId \0 deviceId` -> last time last-seen was written. */
  const lastSeenWritten = new Map<string, number>();
  let decoyHash: Promise<string> | undefined;
  /** Token hash -> its lookup; Map order is least recently used first. */
  const tokenCache = new Map<string, CachedToken>();
  /**
   * Counts revocations: a lookup that read the database while one was announced may have read
   * what it revoked, and is not cached.
   */
  let revocationCount = 0;

  storage.onAccessRevoked((revocation) => {
    revocationCount += 1;
    if ("tokenHash" in revocation) {
      tokenCache.delete(revocation.tokenHash);
      return;
    }
    for (const [tokenHash, cached] of tokenCache) if (cached.requester.userId === revocation.userId) tokenCache.delete(tokenHash);
  });

  /** The requester a token stands for, from the cache or the database; undefined if it is not valid. */
  async function lookUpToken(tokenHash: string, at: number): Promise<CachedToken | undefined> {
    const cached = tokenCache.get(tokenHash);
    if (cached !== undefined && at - cached.cachedTs < TOKEN_CACHE_TTL_MS) {
      tokenCache.delete(tokenHash);
      tokenCache.set(tokenHash, cached);
      return cached;
    }
    tokenCache.delete(tokenHash);
    const revocationsBefore = revocationCount;
    const token = await storage.accounts.getAccessToken(tokenHash);
    if (!token) return undefined;
    const user = await storage.accounts.getUser(token.userId);
    if (!user || user.deactivated) return undefined;
    const found: CachedToken = {
      requester: { userId: user.userId, deviceId: token.deviceId, isGuest: user.isGuest, isAdmin: user.isAdmin, tokenHash },
      expiresTs: token.expiresTs,
      cachedTs: at,
    };
    if (revocationCount === revocationsBefore) {
      if (tokenCache.size >= MAX_CACHED_TOKENS) tokenCache.delete(tokenCache.keys().next().value as string);
      tokenCache.set(tokenHash, found);
    }
    return found;
  }

  async function noteLastSeen(userId: string, deviceId: string, ip: string): Promise<void> {
    const at = now();
    const key = `${userId}\u0000${deviceId}`;
    const written = lastSeenWritten.get(key);
    if (written !== undefined && at - written < LAST_SEEN_INTERVAL_MS) return;
    if (lastSeenWritten.size >= MAX_TRACKED_DEVICES) {
      for (const [k, ts] of lastSeenWritten) if (at - ts >= LAST_SEEN_INTERVAL_MS) lastSeenWritten.delete(k);
      if (lastSeenWritten.size >= MAX_TRACKED_DEVICES) lastSeenWritten.clear();
    }
    lastSeenWritten.set(key, at);
    await storage.accounts.updateDevice(userId, deviceId, { lastSeenTs: at, lastSeenIp: ip || null });
  }

  async function createUser(localpart: string, password: string | null, flags: { admin?: boolean; guest?: boolean; appserviceId?: string }) {
    if (password !== null && password.length > MAX_PASSWORD_LENGTH) {
      throw new MatrixError(Errcode.INVALID_PARAM, 400, `Passwords may be at most ${MAX_PASSWORD_LENGTH} characters`);
    }
    const passwordHash = password === null ? null : await hashPassword(password, deps.scrypt);
    const userId = `@${localpart}:${serverName}`;
    await storage.transaction(async (tx) => {
      if (await tx.accounts.getUserByLocalpart(localpart)) throw new MatrixError(Errcode.USER_IN_USE, 400, "User ID already taken");
      await tx.accounts.createUser({
        userId,
        localpart,
        passwordHash,
        isAdmin: flags.admin ?? false,
        isGuest: flags.guest ?? false,
        deactivated: false,
        displayname: flags.guest ? null : localpart,
        avatarUrl: null,
        createdTs: now(),
        appserviceId: flags.appserviceId ?? null,
      });
    });
    return { userId };
  }

  /**
   * A request made with a service's `as_token` (Application Service API "Identity assertion"): it
   * acts as `user_id` (default: its sender), which must be its own and registered, and as
   * `device_id` when given, which must be one of that user's devices (MSC4326).
   */
  async function appserviceRequester(service: { id: string; senderUserId: string; rateLimited: boolean }, accessToken: string, request: { userIdParam?: string; deviceIdParam?: string }): Promise<Requester> {
    const userId = request.userIdParam ?? service.senderUserId;
    if (userId !== service.senderUserId && !deps.appservices?.ownsUser(service.id, userId)) {
      throw new MatrixError(Errcode.FORBIDDEN, 403, `The application service cannot masquerade as ${userId}: it is outside its namespaces`);
    }
    const user = await storage.accounts.getUser(userId);
    if (!user) throw new MatrixError(Errcode.FORBIDDEN, 403, `The application service has not registered ${userId}`);
    if (user.deactivated) throw new MatrixError(Errcode.USER_DEACTIVATED, 403, "This account has been deactivated");
    let deviceId = "";
    if (request.deviceIdParam !== undefined) {
      if (!(await storage.accounts.getDevice(userId, request.deviceIdParam))) throw new MatrixError(Errcode.FORBIDDEN, 403, `${userId} has no device ${request.deviceIdParam}`);
      deviceId = request.deviceIdParam;
    }
    return {
      userId,
      deviceId,
      isGuest: false,
      isAdmin: user.isAdmin,
      appserviceId: service.id,
      // Registration schema `rate_limited`: masqueraded users are limited unless it is false; the sender never is.
      exemptFromRateLimits: !service.rateLimited || userId === service.senderUserId,
      tokenHash: hashAccessToken(accessToken),
    };
  }

  return {
    ...(deps.appservices ? { appservices: deps.appservices } : {}),

    async authenticate(accessToken, request): Promise<Requester | undefined> {
      const service = deps.appservices?.byToken(accessToken);
      if (service) return appserviceRequester(service, accessToken, request);
      const at = now();
      const found = await lookUpToken(hashAccessToken(accessToken), at);
      if (!found || (found.expiresTs !== null && found.expiresTs <= at)) return undefined;
      const { requester } = found;
      await noteLastSeen(requester.userId, requester.deviceId, request.ip);
      // A copy: callers must not be able to change the cached requester.
      return { ...requester };
    },

    registerUser(options) {
      return createUser(localpartOfUsername(options.localpart, serverName), options.password, options);
    },

    async registerGeneratedUser(options) {
      // 10^12 localparts: a collision is rare; retry a few times rather than fail.
      for (let attempt = 0; ; attempt++) {
        try {
          return await createUser(generateLocalpart(), options.password, options);
        } catch (error) {
          if (attempt >= 4 || !(error instanceof MatrixError) || error.errcode !== Errcode.USER_IN_USE) throw error;
        }
      }
    },

    async isLocalpartAvailable(localpart) {
      return (await storage.accounts.getUserByLocalpart(localpart)) === undefined;
    },

    async createSession(userId, options = {}) {
      const deviceId = options.deviceId ?? generateDeviceId();
      const accessToken = generateAccessToken();
      const at = now();
      await storage.transaction(async (tx) => {
        if (!(await tx.accounts.getDevice(userId, deviceId))) {
          await tx.accounts.upsertDevice({
            userId,
            deviceId,
            displayName: options.initialDeviceDisplayName ?? null,
            lastSeenTs: at,
            lastSeenIp: null,
            createdTs: at,
          });
        }
        await tx.accounts.createAccessToken({ tokenHash: hashAccessToken(accessToken), userId, deviceId, createdTs: at, expiresTs: null });
      });
      return { accessToken, deviceId };
    },

    async checkPassword(userId, password) {
      const user = await storage.accounts.getUser(userId);
      if (user?.deactivated) throw new MatrixError(Errcode.USER_DEACTIVATED, 403, "This account has been deactivated");
      // Unknown users and users without a password cost one scrypt too, so that timing does
      // not tell which user IDs exist.
      decoyHash ??= createDecoyHash(deps.scrypt);
      const stored = user?.passwordHash ?? (await decoyHash);
      const matches = await verifyPassword(password, stored);
      if (!user || user.passwordHash === null || !matches) throw new MatrixError(Errcode.FORBIDDEN, 403, "Invalid username or password");
    },

    async setPassword(userId, password) {
      if (password !== null && password.length > MAX_PASSWORD_LENGTH) {
        throw new MatrixError(Errcode.INVALID_PARAM, 400, `Passwords may be at most ${MAX_PASSWORD_LENGTH} characters`);
      }
      const passwordHash = password === null ? null : await hashPassword(password, deps.scrypt);
      await storage.transaction((tx) => tx.accounts.updateUser(userId, { passwordHash }));
    },
  };
}
