// The application services of this server: who a service token stands for, which users and aliases
// are claimed, the queries to the services, their ping, and one transaction pusher per service
// with a url. app/ builds it once from the loaded registrations.
import type { Logger } from "pino";
import type { Storage } from "../storage/ports.js";
import type { BridgeAnswer, BridgeClient } from "./bridge-client.js";
import { checkAliasClaim, checkUserClaim, isServiceAlias, isServiceUser, senderUserIdOf } from "./namespaces.js";
import { createPusher, type Pusher, type PusherSettings, type PusherStatus, type RoomFacts } from "./pusher.js";
import type { AppserviceRegistration } from "./registration.js";

/** What a service token resolves to. */
export interface AppserviceIdentity {
  id: string;
  senderUserId: string;
  rateLimited: boolean;
}

/** A service's delivery as the admin API shows it (`GET /_bobbin/admin/v1/appservices`). */
export interface AppserviceOverview {
  id: string;
  url: string | null;
  /** Undefined for a service without a url: nothing is pushed to it. */
  delivery?: PusherStatus & {
    /** Stream positions between the cursor and the server's stream head: an upper bound on what is queued. */
    behind: number;
  };
}

/** The answer to a ping (`POST /_matrix/client/v1/appservice/{appserviceId}/ping`). */
export type PingVerdict = { ok: true; durationMs: number } | { ok: false; status: number; body: Record<string, unknown> };

export interface Appservices {
  readonly registrations: readonly AppserviceRegistration[];
  byToken(asToken: string): AppserviceIdentity | undefined;
  /** Whether the service may act as or register the user: its sender or a user of its namespaces. */
  ownsUser(appserviceId: string, userId: string): boolean;
  ownsAlias(appserviceId: string, alias: string): boolean;
  /** Why `userId` may not be registered by `appserviceId` (or by a non-service when undefined); undefined: it may. */
  userClaimRefusal(userId: string, appserviceId: string | undefined): string | undefined;
  aliasClaimRefusal(alias: string, appserviceId: string | undefined): string | undefined;
  /** Asks the services whose namespaces hold the user whether it exists (they may create it now); true when one said 200. */
  queryUser(userId: string): Promise<boolean>;
  queryAlias(alias: string): Promise<boolean>;
  ping(appserviceId: string, transactionId: string | undefined): Promise<PingVerdict>;
  /** New events up to `streamPos` were committed. */
  wake(streamPos: number): void;
  status(appserviceId: string): PusherStatus | undefined;
  /** Every registered service and its queue, in registration order. */
  overview(): AppserviceOverview[];
  /** Who types in a room now (local or remote, every change): pushed to services with `receive_ephemeral`. */
  typing(roomId: string, userIds: readonly string[]): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface AppservicesDeps {
  registrations: readonly AppserviceRegistration[];
  serverName: string;
  storage: Storage;
  rooms: RoomFacts;
  client: BridgeClient;
  visiblePos: () => number;
  logger: Logger;
  now: () => number;
  settings: PusherSettings;
  /** Creates the service's sender user (`sender_localpart`) if it does not exist. */
  ensureSender(localpart: string, appserviceId: string): Promise<void>;
}

function isSuccess(answer: BridgeAnswer): boolean {
  return answer.kind === "status" && answer.status >= 200 && answer.status < 300;
}

export function createAppservices(deps: AppservicesDeps): Appservices {
  const { registrations, serverName, logger } = deps;
  const byId = new Map(registrations.map((r) => [r.id, r]));
  const byAsToken = new Map(registrations.map((r) => [r.asToken, r]));
  const pushers = new Map<string, Pusher>();
  for (const registration of registrations) {
    if (registration.url === null) continue;
    pushers.set(
      registration.id,
      createPusher({
        registration,
        serverName,
        storage: deps.storage,
        rooms: deps.rooms,
        client: deps.client,
        visiblePos: deps.visiblePos,
        logger: logger.child({ appservice: registration.id }),
        settings: deps.settings,
        now: deps.now,
      }),
    );
  }

  /** Services whose namespaces hold the entity, exclusive holders first: the one that owns it answers first. */
  function candidates(holds: (r: AppserviceRegistration, exclusiveOnly: boolean) => boolean): AppserviceRegistration[] {
    const exclusive = registrations.filter((r) => holds(r, true));
    return [...exclusive, ...registrations.filter((r) => !exclusive.includes(r) && holds(r, false))].filter((r) => r.url !== null);
  }

  async function ask(list: AppserviceRegistration[], query: (r: AppserviceRegistration) => Promise<BridgeAnswer>, what: string): Promise<boolean> {
    for (const registration of list) {
      const answer = await query(registration);
      if (isSuccess(answer)) return true;
      if (answer.kind !== "status" || answer.status >= 500) logger.warn({ appservice: registration.id, what, answer: answer.kind === "status" ? answer.status : answer.kind }, "application service query failed");
    }
    return false;
  }

  return {
    registrations,

    byToken(asToken) {
      const registration = byAsToken.get(asToken);
      return registration && { id: registration.id, senderUserId: senderUserIdOf(registration, serverName), rateLimited: registration.rateLimited };
    },

    ownsUser(appserviceId, userId) {
      const registration = byId.get(appserviceId);
      return registration !== undefined && isServiceUser(registration, userId, serverName);
    },

    ownsAlias(appserviceId, alias) {
      const registration = byId.get(appserviceId);
      return registration !== undefined && isServiceAlias(registration, alias);
    },

    userClaimRefusal(userId, appserviceId) {
      const verdict = checkUserClaim(registrations, userId, serverName, appserviceId !== undefined ? byId.get(appserviceId) : undefined);
      return verdict.ok ? undefined : verdict.reason;
    },

    aliasClaimRefusal(alias, appserviceId) {
      const verdict = checkAliasClaim(registrations, alias, appserviceId !== undefined ? byId.get(appserviceId) : undefined);
      return verdict.ok ? undefined : verdict.reason;
    },

    queryUser(userId) {
      // Application Service API "Querying": only users of this server, in a service's namespace.
      const list = candidates((r, exclusiveOnly) => userId !== senderUserIdOf(r, serverName) && isServiceUser(r, userId, serverName, exclusiveOnly));
      return ask(list, (r) => deps.client.queryUser(r, userId), "user");
    },

    queryAlias(alias) {
      return ask(candidates((r, exclusiveOnly) => isServiceAlias(r, alias, exclusiveOnly)), (r) => deps.client.queryAlias(r, alias), "alias");
    },

    async ping(appserviceId, transactionId) {
      const registration = byId.get(appserviceId);
      if (!registration) return { ok: false, status: 403, body: { errcode: "M_FORBIDDEN", error: "The token is not the application service's" } };
      if (registration.url === null) return { ok: false, status: 400, body: { errcode: "M_URL_NOT_SET", error: "The application service has no url" } };
      const started = deps.now();
      const answer = await deps.client.ping(registration, transactionId);
      const durationMs = deps.now() - started;
      // Client-Server API "POST /_matrix/client/v1/appservice/{appserviceId}/ping": 502 and 504 errors.
      if (answer.kind === "timeout") return { ok: false, status: 504, body: { errcode: "M_CONNECTION_TIMEOUT", error: "The application service did not answer in time" } };
      if (answer.kind === "failed") return { ok: false, status: 502, body: { errcode: "M_CONNECTION_FAILED", error: `Cannot reach the application service: ${answer.reason}` } };
      if (answer.status < 200 || answer.status >= 300) {
        return { ok: false, status: 502, body: { errcode: "M_BAD_STATUS", error: "The application service answered with an error", status: answer.status, body: answer.body } };
      }
      // The service is up: a transaction waiting out its backoff goes now.
      pushers.get(appserviceId)?.retryNow();
      return { ok: true, durationMs };
    },

    wake(streamPos) {
      for (const pusher of pushers.values()) pusher.wake(streamPos);
    },

    status: (appserviceId) => pushers.get(appserviceId)?.status(),

    overview() {
      const head = deps.visiblePos();
      return registrations.map((registration) => {
        const status = pushers.get(registration.id)?.status();
        return { id: registration.id, url: registration.url, ...(status ? { delivery: { ...status, behind: Math.max(0, head - status.streamPos) } } : {}) };
      });
    },

    typing(roomId, userIds) {
      for (const pusher of pushers.values()) pusher.typing(roomId, userIds);
    },

    async start() {
      for (const registration of registrations) await deps.ensureSender(registration.senderLocalpart, registration.id);
      for (const pusher of pushers.values()) await pusher.start();
      // Presence is not implemented by this server at all: there is none to push.
    },

    async close() {
      await Promise.all([...pushers.values()].map((p) => p.close()));
    },
  };
}
