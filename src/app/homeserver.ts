// The composition root: opens storage, builds every service once, mounts the APIs and listens.
// Everything here is wired from plain settings; config loading and the CLI live in config.ts
// and main.ts.
import { promises as dns } from "node:dns";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { SigningKey } from "../core/signing.js";
import type { FederationSettings } from "../federation/transport/settings.js";
import { createFederationClient, createHttpExchanger, createServerResolver, createWellKnownFetcher, wellKnownRoutes } from "../federation/transport/index.js";
import { createKeyRing } from "../federation/keys/key-ring.js";
import { createKeyNotary } from "../federation/keys/notary.js";
import type { OldVerifyKey } from "../federation/keys/server-keys.js";
import { keyRoutes } from "../federation/routes/key-routes.js";
import { federationApi } from "../federation/routes/index.js";
import { createLocalQueries, createRemoteDirectory, createRemoteProfiles } from "../federation/queries.js";
import { createOutboundQueues } from "../federation/outbound/queues.js";
import type { OutboundQueues } from "../federation/outbound/types.js";
import { EchoWaiters } from "../federation/rooms/echoes.js";
import { JoinsInProgress } from "../federation/rooms/joins.js";
import { createFederationHubLink } from "../federation/rooms/hub-link.js";
import { createEduReceiver } from "../federation/rooms/edus.js";
import { createEdusOut } from "../federation/edus-out.js";
import { createRemoteKeys } from "../federation/remote-keys.js";
import { BOBBIN_VERSION } from "./version.js";
import { adminApi } from "../admin/api/index.js";
import { bobbinAdminApi } from "../admin/api/bobbin.js";
import { createAuthService, createKeys } from "../client-api/accounts/index.js";
import { createRateLimiter, type RateLimitSettings } from "../client-api/accounts/rate-limit.js";
import type { ClientApiContext } from "../client-api/contracts.js";
import { clientApi } from "../client-api/index.js";
import { createSyncEngine } from "../client-api/sync/engine.js";
import { MembershipIndex } from "../rooms/membership-index.js";
import { createVerifyPool } from "../rooms/verify-pool.js";
import { createRoomService } from "../rooms/room-service.js";
import { MlsOverlay } from "../mls-overlay/mls-overlay.js";
import { createMlsLoader } from "../mls-overlay/ts-mls-adapter.js";
import { createGroupInfoFetcher } from "../mls-overlay/group-info-federation.js";
import { createToDevice } from "../client-api/accounts/to-device.js";
import { ENCRYPTED_EVENT_TYPE } from "../core/mls-wire.js";
import { openStorage, type DatabaseSettings } from "../storage/index.js";
import type { Storage } from "../storage/ports.js";
import { StreamTracker } from "../storage/stream-tracker.js";
import { createHttpApp } from "./http-app.js";
import { healthRoutes } from "../admin/health.js";
import type { MetricsListener } from "../admin/metrics.js";
import { appserviceClientRoutes, createAppservices, createBridgeClient, DEFAULT_PUSHER_SETTINGS, withServiceAliases, type AppserviceRegistration, type PusherSettings } from "../appservice/index.js";
import type { SyncNotifier } from "../client-api/contracts.js";
import { Errcode, MatrixError } from "../core/errors.js";

export interface HomeserverSettings {
  serverName: string;
  database: DatabaseSettings;
  signingKey: SigningKey;
  /** Where the client and federation APIs listen. Port 0 picks a free port (tests). */
  listeners: Array<{ host: string; port: number }>;
  registration: { enabled: boolean; allowGuests: boolean };
  /** Enables shared-secret registration (`/_synapse/admin/v1/register`); absent: disabled. */
  registrationSharedSecret?: string;
  /** Application services (config `app_service_config_files`, loaded and validated). */
  appservices?: AppserviceRegistration[];
  /** How the transaction pushers back off (tests shorten it). */
  appservicePusher?: PusherSettings;
  rateLimits: RateLimitSettings;
  /** Reverse proxies whose X-Forwarded-For names the client (config `trusted_proxies`); absent: none. */
  trustedProxies?: string[];
  maxRequestBytes: number;
  /** Federation transport settings (config key `federation`); absent in tests that do not federate. */
  federation?: FederationSettings;
  /** Retired signing keys still published under `old_verify_keys` (docs/signing-keys.md). */
  oldVerifyKeys?: OldVerifyKey[];
  /** The Prometheus listener (config key `metrics`); absent when metrics are disabled. Port 0 picks a free port. */
  metrics?: { host: string; port: number };
  logger: Logger;
  now?: () => number;
}

export interface Homeserver {
  readonly storage: Storage;
  /** `http://host:port` of each listener, in the order configured. */
  readonly urls: string[];
  /** `http://host:port` of the metrics listener (scrape `/metrics`), when metrics are enabled. */
  readonly metricsUrl: string | undefined;
  /** Stops accepting, ends long-polls, waits for in-flight requests, closes the database. */
  close(): Promise<void>;
}

/** How long a shutdown waits for requests in flight before closing their connections. */
const DRAIN_GRACE_MS = 10_000;

/**
 * Closes the listeners and waits for their requests in flight, up to `graceMs`. Keep-alive
 * connections that go idle during the wait are closed as they do (server.close() closes only the
 * ones idle when it is called); after `graceMs` every remaining connection is cut.
 */
async function drainServers(servers: Server[], graceMs: number): Promise<{ forced: number }> {
  const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  const sweep = setInterval(() => servers.forEach((server) => server.closeIdleConnections()), 50);
  servers.forEach((server) => server.closeIdleConnections());
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([closed.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (!timedOut) return { forced: 0 };
  let forced = 0;
  for (const server of servers) {
    forced += await new Promise<number>((resolve) => server.getConnections((_error, count) => resolve(count)));
    server.closeAllConnections();
  }
  await closed;
  return { forced };
}

export async function startHomeserver(settings: HomeserverSettings): Promise<Homeserver> {
  const { logger } = settings;
  const now = settings.now ?? Date.now;
  const storage = await openStorage(settings.database);
  const streams = new StreamTracker(await storage.maxStreamPos());
  // Shared: the room writer keeps it current, syncs read it.
  const memberships = new MembershipIndex(storage);
  // Loaded only when enabled: prom-client alone is ~12 MB of resident memory.
  const metricsModule = settings.metrics ? await import("../admin/metrics.js") : undefined;
  const metrics = metricsModule?.createMetrics({ serverName: settings.serverName, processMetrics: true });
  const sync = createSyncEngine({ storage, streams, memberships, logger: logger.child({ component: "sync" }), now, ...(metrics ? { recentEvents: metrics.recentEvents } : {}) });
  // Typing, receipts, to-device messages and device-list changes for other servers. The rooms and
  // outbound queues it calls are built below, before any request can arrive.
  const edusOut = createEdusOut({
    serverName: settings.serverName,
    memberships,
    roomInfo: (roomId) => rooms.federation.roomInfo(roomId),
    queueEdus: (edus) => outbound.queueEdus(edus),
    logger: logger.child({ component: "federation", part: "edus" }),
    now,
  });
  sync.typing.relayLocalTyping((roomId, userId, typing, timeoutMs) => void edusOut.typing(roomId, userId, typing, timeoutMs));
  // Application services: their pushers read the event stream; the room writer wakes them (below).
  const appservices = createAppservices({
    registrations: settings.appservices ?? [],
    serverName: settings.serverName,
    storage,
    rooms: {
      members: async (roomId) => (await memberships.room(roomId)).members,
      membershipBefore: async (roomId, roomSeq, userId) => {
        const membership = (await storage.events.getStateEventBefore(roomId, roomSeq, "m.room.member", userId))?.pdu.content.membership;
        return typeof membership === "string" ? membership : undefined;
      },
      aliases: async (roomId) => {
        const canonical = (await storage.events.getCurrentStateEvent(roomId, "m.room.canonical_alias", ""))?.pdu.content;
        const alt = Array.isArray(canonical?.alt_aliases) ? canonical.alt_aliases.filter((a): a is string => typeof a === "string") : [];
        return [...(await storage.aliases.listForRoom(roomId)), ...(typeof canonical?.alias === "string" ? [canonical.alias] : []), ...alt];
      },
    },
    client: createBridgeClient(),
    visiblePos: () => streams.visible,
    logger: logger.child({ component: "appservice" }),
    now,
    settings: settings.appservicePusher ?? DEFAULT_PUSHER_SETTINGS,
    ensureSender: async (localpart, appserviceId) => {
      try {
        await auth.registerUser({ localpart, password: null, appserviceId });
      } catch (error) {
        if (!(error instanceof MatrixError && error.errcode === Errcode.USER_IN_USE)) throw error;
      }
    },
  });
  // Typing (local and remote) for services with receive_ephemeral.
  sync.typing.watchTyping((roomId, userIds) => appservices.typing(roomId, userIds));
  // Every committed room event, and every to-device message, may be of interest to a service:
  // wake the pushers with the syncs.
  const notifier: SyncNotifier = {
    ...sync.notifier,
    notifyRoom: (roomId, streamPos) => {
      sync.notifier.notifyRoom(roomId, streamPos);
      appservices.wake(streamPos);
    },
    notifyUsers: (userIds, streamPos) => {
      sync.notifier.notifyUsers(userIds, streamPos);
      appservices.wake(streamPos);
    },
  };
  const auth = createAuthService({ storage, now, serverName: settings.serverName, ...(appservices.registrations.length > 0 ? { appservices } : {}) });
  const ctx: ClientApiContext = {
    serverName: settings.serverName,
    storage,
    streams,
    notifier,
    authenticator: auth,
    rateLimiter: createRateLimiter(settings.rateLimits, now),
    logger,
    signingKey: settings.signingKey,
    now,
    remoteEdus: edusOut,
  };
  // Set once the federation client exists (below); the room writer wakes it after each hub event.
  let queues: OutboundQueues | undefined;
  const verifyPool = createVerifyPool();
  // The MLS overlay (issue 5): checks commits and encrypted messages as the room writer places
  // them; ts-mls is loaded on the first event of an encrypted room, not before.
  const mlsLoader = createMlsLoader();
  // Welcomes go out by to-device message as their committer; a replica without group state asks
  // its hub for the GroupInfo (through the federation client created below).
  const mlsToDevice = createToDevice(ctx);
  const mlsLogger = logger.child({ component: "mls" });
  const mlsOverlay = new MlsOverlay({
    storage,
    loader: mlsLoader,
    logger: mlsLogger,
    now,
    ...(metrics ? { onCommitVerdict: (verdict: "accepted" | "rejected") => metrics.countMlsCommit(verdict) } : {}),
    // Only the committer's user and device matter to the to-device service (its transaction IDs).
    sendWelcome: (sender, txnId, messages) => mlsToDevice.send({ ...sender, isGuest: false, isAdmin: false, tokenHash: "" }, ENCRYPTED_EVENT_TYPE, txnId, messages, mlsLogger),
    fetchGroupInfo: (server, roomId, epoch) => createGroupInfoFetcher(federationClient)(server, roomId, epoch),
  });
  const rooms = createRoomService({
    policy: mlsOverlay,
    verifyPool,
    fanout: { queued: (events) => queues?.queued(events), redacted: (eventId, pdu) => queues?.redacted(eventId, pdu) },
    serverName: settings.serverName,
    signingKey: settings.signingKey,
    storage,
    streams,
    notifier,
    transactions: sync.transactions,
    recentEvents: sync.recentEvents,
    memberships,
    remoteEdus: edusOut,
    logger: logger.child({ component: "rooms" }),
    now,
  });
  // Federation: outbound client (X-Matrix, server discovery, TLS), the key ring and the notary.
  const federation = settings.federation ?? { allowInsecureHttp: false, trustedKeyServers: [] };
  const exchanger = createHttpExchanger(federation.extraCaPath ? { extraCa: readFileSync(federation.extraCaPath) } : {});
  const federationLogger = logger.child({ component: "federation" });
  const resolver = createServerResolver({ dns: new dns.Resolver(), fetchWellKnown: createWellKnownFetcher({ exchanger }), logger: federationLogger });
  const federationClient = createFederationClient({
    serverName: settings.serverName,
    signingKeys: [settings.signingKey],
    resolver,
    exchanger,
    allowInsecureHttp: federation.allowInsecureHttp,
    logger: federationLogger,
  });
  const own = { serverName: settings.serverName, signingKey: settings.signingKey, oldKeys: settings.oldVerifyKeys ?? [] };
  const keyRing = createKeyRing({
    own,
    fetcher: federationClient.keyFetcher(),
    storage: storage.serverKeys,
    trustedKeyServers: federation.trustedKeyServers,
    now,
    logger: federationLogger,
  });
  const notary = createKeyNotary({ own, keyRing, now });
  const outbound = createOutboundQueues({ serverName: settings.serverName, storage, client: federationClient, visiblePos: () => streams.visible, logger: federationLogger.child({ part: "outbound" }), now, ...(federation.outbound ? { settings: federation.outbound } : {}) });
  queues = outbound;
  metrics?.readSourcesFrom({ queues: outbound, syncsInProgress: () => sync.inProgress(), databasePool: () => storage.poolStats() });
  const echoes = new EchoWaiters();
  const joins = new JoinsInProgress();
  const remoteDirectory = createRemoteDirectory(federationClient);
  const hubLink = createFederationHubLink({
    serverName: settings.serverName,
    signingKey: settings.signingKey,
    client: federationClient,
    queues: outbound,
    echoes,
    joins,
    rooms: rooms.federation,
    keyRing,
    directory: remoteDirectory,
    logger: federationLogger,
    now,
  });
  rooms.setHubLink(hubLink);

  const app = createHttpApp({
    logger,
    // The client address of a request (`req.ip`: rate limits, devices' last seen address) is the
    // connection's unless it comes from a configured proxy, whose X-Forwarded-For is then believed.
    ...(settings.trustedProxies && settings.trustedProxies.length > 0 ? { trustedProxies: settings.trustedProxies } : {}),
    maxRequestBytes: settings.maxRequestBytes,
    ...(metrics ? { observeRequest: metrics.observeRequest } : {}),
    mounts: [
      // Application Service API "Pinging"; before the client API, whose router ends with 404/405.
      ["/_matrix/client", appserviceClientRoutes(appservices, auth)],
      [
        "/_matrix/client",
        clientApi(ctx, {
          auth,
          // Joining an unknown alias of a service's namespace asks the service first (Application Service API "Querying").
          rooms: appservices.registrations.length > 0 ? withServiceAliases(rooms, { serverName: settings.serverName, aliases: storage.aliases, queryAlias: (alias) => appservices.queryAlias(alias) }) : rooms,
          sync,
          mls: { overlay: mlsOverlay, loader: mlsLoader },
          accounts: {
            registration: settings.registration,
            remoteProfiles: createRemoteProfiles(federationClient),
            remoteDirectory,
            remoteKeys: createRemoteKeys(federationClient),
          },
        }),
      ],
      [
        "/_matrix/federation",
        federationApi({
          auth: {
            serverName: settings.serverName,
            // Request signatures must be by a key the origin currently publishes (LM draft "Request Authentication").
            lookupKey: (server, keyId) => keyRing.getVerifyKey(server, keyId, { requireCurrent: true, minimumValidUntilTs: now() }),
            maxRequestBytes: settings.maxRequestBytes,
          },
          queries: createLocalQueries({ storage, serverName: settings.serverName, ...(appservices.registrations.length > 0 ? { appservices } : {}) }),
          version: BOBBIN_VERSION,
          storage,
          now,
          send: {
            storage,
            rooms: rooms.federation,
            keyRing,
            echoes,
            joins,
            receiveEdus: createEduReceiver({
              storage,
              serverName: settings.serverName,
              streams,
              notifier,
              typing: sync.typing,
              memberships,
              roomInfo: (roomId) => rooms.federation.roomInfo(roomId),
              forwardRoomEdu: (roomId, edu, origin) => edusOut.forwardRoomEdu(roomId, edu, origin),
              logger: federationLogger.child({ part: "edus" }),
              now,
            }),
            markReachable: (origin) => outbound.markReachable(origin),
            logger: federationLogger,
            now,
          },
          membership: { serverName: settings.serverName, signingKey: settings.signingKey, storage, rooms: rooms.federation, keyRing, hubLink: () => hubLink, logger: federationLogger },
          // Our users' keys through the client API's own key service: one claim path for both APIs.
          userKeys: createKeys(ctx),
          rateLimiter: ctx.rateLimiter,
        }),
      ],
      // Server admins only (issue 7): the Synapse Admin API subset admins' tools use.
      ["/_synapse/admin", adminApi({ ctx, auth, rooms, queues: outbound, registrationSharedSecret: settings.registrationSharedSecret, version: BOBBIN_VERSION, logger: logger.child({ component: "admin" }) })],
      // Bobbin's own admin API (LM data Synapse's has no place for); server admins only as well.
      ["/_bobbin/admin", bobbinAdminApi({ storage, authenticator: ctx.authenticator, appservices })],
      // Unauthenticated: server keys and the notary (LM draft "Retrieving Server Keys"), .well-known.
      ["/", keyRoutes({ notary })],
      ["/", wellKnownRoutes({ wellKnownServer: federation.wellKnownServer })],
      // Unauthenticated: for load balancers.
      ["/", healthRoutes({ storage, logger })],
    ],
  });

  const servers: Server[] = [];
  const urls: string[] = [];
  let metricsListener: MetricsListener | undefined;
  try {
    for (const listener of settings.listeners) {
      const server = createServer(app);
      // Long-polling syncs hold requests for up to their timeout; keep idle sockets a while.
      server.keepAliveTimeout = 65_000;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(listener.port, listener.host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
      servers.push(server);
      urls.push(`http://${host}:${address.port}`);
      logger.info({ url: urls[urls.length - 1] }, "listening");
    }
    if (federation.tls) {
      // The TLS federation listener serves the same app (LM draft "TLS Certificates").
      const { tls } = federation;
      const server = createTlsServer({ cert: readFileSync(tls.certificatePath), key: readFileSync(tls.privateKeyPath) }, app);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(tls.port, tls.host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      servers.push(server);
      logger.info({ url: `https://${tls.host}:${address.port}` }, "listening (TLS federation)");
    }
    if (metricsModule && metrics && settings.metrics) metricsListener = await metricsModule.startMetricsListener(metrics, settings.metrics, logger.child({ component: "metrics" }));
    await outbound.start();
    await appservices.start();
    // Welcomes whose commit was accepted before a crash and never delivered (welcome-outbox.ts).
    await mlsOverlay.welcomes.resume();
  } catch (error) {
    await metricsListener?.close();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    federationClient.close();
    await storage.close();
    throw error;
  }

  let closing: Promise<void> | undefined;
  return {
    storage,
    urls,
    metricsUrl: metricsListener?.url,
    close() {
      closing ??= (async () => {
        // 1. Stop accepting; long-polls answer now, and so do requests waiting for a hub's echo
        //    (it could only arrive on a connection we no longer accept).
        const drained = drainServers(servers, DRAIN_GRACE_MS);
        sync.close();
        echoes.close();
        logger.info({ grace_ms: DRAIN_GRACE_MS }, "stopped accepting connections; finishing requests in flight");
        // 2. Requests in flight finish (they may still queue events and send LPDUs to hubs).
        const { forced } = await drained;
        if (forced > 0) logger.warn({ connections: forced }, "requests still running after the grace period: connections closed");
        // 3. Transactions in flight to other servers finish (bounded); the rest stays queued in the database.
        logger.info("flushing outbound federation queues");
        await outbound.close();
        // 4. Application service transactions in flight finish; the rest stays queued in the database.
        await appservices.close();
        await verifyPool.close();
        federationClient.close();
        // Last: Prometheus sees the shutdown's last moments.
        await metricsListener?.close();
        logger.info("closing the database");
        await storage.close();
        logger.info("stopped");
      })();
      return closing;
    },
  };
}
