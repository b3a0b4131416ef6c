// Shared-secret registration, `GET|POST /_synapse/admin/v1/register` (Synapse Admin API
// "Shared-Secret Registration"), so Synapse's `register_new_matrix_user` and scripts written
// for it work: GET hands out a nonce; POST creates the account when its `mac` is the HMAC-SHA1,
// keyed by `registration_shared_secret`, of `nonce\0username\0password\0admin|notadmin`
// (`\0user_type` appended when given). It needs no access token: knowing the secret is the proof.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import type { JsonObject } from "../../core/json.js";
import type { AuthService } from "../../client-api/accounts/auth-service.js";
import { localpartOfUsername } from "../../client-api/accounts/usernames.js";
import { bodyOf, optionalBoolean, optionalString, requireString } from "../../client-api/http.js";
import type { Storage } from "../../storage/ports.js";
import { logAdminAction } from "./guard.js";

/** How long a nonce stays valid (Synapse: 60 s). */
export const NONCE_TTL_MS = 60_000;
/** Nonces held at once; beyond it the oldest go (each GET makes one, unauthenticated). */
const MAX_NONCES = 10_000;
/** Synapse's limit on username and password here. */
const MAX_FIELD_LENGTH = 512;

export interface SharedSecretRegistrationDeps {
  /** undefined: the endpoint is disabled. */
  secret: string | undefined;
  auth: AuthService;
  storage: Storage;
  serverName: string;
  logger: Logger;
  now: () => number;
}

/** The hex HMAC-SHA1 a client computes over the request's fields with the shared secret. */
export function registrationMac(secret: string, fields: { nonce: string; username: string; password: string; admin: boolean; userType?: string }): string {
  const hmac = createHmac("sha1", Buffer.from(secret, "utf8"));
  const parts = [fields.nonce, fields.username, fields.password, fields.admin ? "admin" : "notadmin"];
  if (fields.userType !== undefined) parts.push(fields.userType);
  hmac.update(parts.join("\0"), "utf8");
  return hmac.digest("hex");
}

function macMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A username or password field: a string without NUL (the MAC's separator), at most 512 characters. */
function macField(body: JsonObject, key: string): string {
  const value = requireString(body, key);
  if (value.includes("\0") || value.length > MAX_FIELD_LENGTH) throw new MatrixError(Errcode.INVALID_PARAM, 400, `Invalid ${key}`);
  return value;
}

/** Single-use nonces that expire; the map keeps insertion order, so the oldest come first. */
function createNonceStore(now: () => number) {
  const nonces = new Map<string, number>();
  const dropExpired = (): void => {
    for (const [nonce, expiresTs] of nonces) {
      if (expiresTs > now() && nonces.size < MAX_NONCES) break;
      nonces.delete(nonce);
    }
  };
  return {
    issue(): string {
      dropExpired();
      const nonce = randomBytes(16).toString("hex");
      nonces.set(nonce, now() + NONCE_TTL_MS);
      return nonce;
    },
    /** Whether the nonce was issued and is unexpired; it is used up either way. */
    consume(nonce: string): boolean {
      const expiresTs = nonces.get(nonce);
      nonces.delete(nonce);
      return expiresTs !== undefined && expiresTs > now();
    },
  };
}

/** A `POST /v1/register` body, parsed; the MAC is checked by the service. */
export interface SharedSecretRequest {
  nonce: string;
  username: string;
  password: string;
  admin: boolean;
  userType?: string;
  displayname?: string;
  mac: string;
}

export interface SharedSecretRegistration {
  /** A fresh single-use nonce; 400 M_UNKNOWN when the endpoint is disabled. */
  issueNonce(): string;
  register(request: SharedSecretRequest): Promise<{ access_token: string; user_id: string; home_server: string; device_id: string }>;
}

export function createSharedSecretRegistration(deps: SharedSecretRegistrationDeps): SharedSecretRegistration {
  const nonces = createNonceStore(deps.now);
  const secretOrRefuse = (): string => {
    // Synapse answers the disabled endpoint 400 M_UNKNOWN.
    if (deps.secret === undefined) throw new MatrixError(Errcode.UNKNOWN, 400, "Shared secret registration is not enabled");
    return deps.secret;
  };

  return {
    issueNonce() {
      secretOrRefuse();
      return nonces.issue();
    },

    async register(request) {
      const secret = secretOrRefuse();
      // The nonce is spent even when the rest is wrong, so each MAC gets one try.
      if (!nonces.consume(request.nonce)) throw new MatrixError(Errcode.UNKNOWN, 400, "unrecognised nonce");
      const { nonce, username, password, admin, userType } = request;
      const expected = registrationMac(secret, { nonce, username, password, admin, ...(userType !== undefined ? { userType } : {}) });
      if (!macMatches(expected, request.mac)) throw new MatrixError(Errcode.FORBIDDEN, 403, "HMAC incorrect");
      // Bobbin has no user types (support, bot): refuse rather than create a plain account.
      if (userType !== undefined) throw new MatrixError(Errcode.INVALID_PARAM, 400, "user_type is not supported");
      const { userId } = await deps.auth.registerUser({ localpart: localpartOfUsername(username, deps.serverName), password, admin });
      if (request.displayname !== undefined) {
        const displayname = request.displayname;
        await deps.storage.transaction((tx) => tx.accounts.updateUser(userId, { displayname }));
      }
      const session = await deps.auth.createSession(userId);
      logAdminAction(deps.logger, "shared secret", "register_user", { user_id: userId, admin, password_set: true });
      return { access_token: session.accessToken, user_id: userId, home_server: deps.serverName, device_id: session.deviceId };
    },
  };
}

/** The fields of a `POST /v1/register` body; the nonce is read first, as Synapse does. */
function sharedSecretRequestOf(body: JsonObject): SharedSecretRequest {
  const nonce = requireString(body, "nonce");
  const userType = optionalString(body, "user_type");
  const displayname = optionalString(body, "displayname");
  return {
    nonce,
    username: macField(body, "username"),
    password: macField(body, "password"),
    admin: optionalBoolean(body, "admin") ?? false,
    ...(userType !== undefined ? { userType } : {}),
    ...(displayname !== undefined ? { displayname } : {}),
    mac: requireString(body, "mac"),
  };
}

export function mountRegisterRoutes(router: Router, registration: SharedSecretRegistration): void {
  // GET /v1/register
  router.get("/v1/register", (_req, res) => {
    res.json({ nonce: registration.issueNonce() });
  });

  // POST /v1/register
  router.post("/v1/register", async (req, res) => {
    res.json(await registration.register(sharedSecretRequestOf(bodyOf(req))));
  });
}
