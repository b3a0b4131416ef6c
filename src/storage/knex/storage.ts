// The knex implementation of Storage: every repository bound to the pool, or to a transaction.
import type { Knex } from "knex";
import type { AccessRevocation, PoolStats, Storage, StorageRepos } from "../ports.js";
import { createAccountDataRepo } from "./account-data.js";
import { createAccountsRepo } from "./accounts.js";
import { createAliasesRepo } from "./aliases.js";
import { createAppserviceRepo } from "./appservice.js";
import { createBlockedRoomsRepo } from "./blocked-rooms.js";
import { createClientTxnsRepo } from "./client-txns.js";
import { type Engine, type PooledKnexClient, toNumber } from "./db.js";
import { createEventsRepo } from "./events.js";
import { createFederationRepo, DestSetCache } from "./federation.js";
import { createFiltersRepo } from "./filters.js";
import { createGroupCommit, type SyncFile } from "./group-commit.js";
import { createKeysRepo } from "./keys.js";
import { createMlsRepo } from "./mls.js";
import { createPurgeRepo } from "./purge.js";
import { createReceiptsRepo } from "./receipts.js";
import { createServerKeysRepo } from "./server-keys.js";
import { createToDeviceRepo } from "./to-device.js";
import type { SqliteHotPath } from "./sqlite-hot-path.js";

/** Every table with a stream_pos column, plus the retired-positions row (see stream_retired). */
const streamTables = ["events", "account_data", "receipts", "to_device", "device_keys", "device_list_changes", "stream_retired"];

/**
 * Transactions one SQLite batch may hold (group-commit.ts). At ~0.1 ms of work each, a full batch
 * keeps queries outside transactions waiting a few milliseconds at most.
 */
const MAX_GROUP_COMMIT_BATCH = 64;

/** `revoked`: see Storage.onAccessRevoked; the caller delivers it once the write has settled. */
/** `destSets`: the one cache of outbox destination sets of this Storage, shared by its transactions. */
export function createRepos(knex: Knex, engine: Engine, revoked: (revocation: AccessRevocation) => void, destSets: DestSetCache, hotPath?: SqliteHotPath): StorageRepos {
  const factories = repoFactories(knex, engine, revoked, destSets, hotPath);
  return Object.fromEntries(Object.entries(factories).map(([name, build]) => [name, build()])) as unknown as StorageRepos;
}

type RepoFactories = { readonly [Name in keyof StorageRepos]: () => StorageRepos[Name] };

function repoFactories(knex: Knex, engine: Engine, revoked: (revocation: AccessRevocation) => void, destSets: DestSetCache, hotPath?: SqliteHotPath): RepoFactories {
  return {
    accounts: () => createAccountsRepo(knex, revoked),
    events: () => createEventsRepo(knex, hotPath),
    clientTxns: () => createClientTxnsRepo(knex, hotPath),
    aliases: () => createAliasesRepo(knex),
    filters: () => createFiltersRepo(knex),
    accountData: () => createAccountDataRepo(knex),
    receipts: () => createReceiptsRepo(knex),
    toDevice: () => createToDeviceRepo(knex),
    keys: () => createKeysRepo(knex, engine),
    serverKeys: () => createServerKeysRepo(knex),
    federation: () => createFederationRepo(knex, destSets),
    blockedRooms: () => createBlockedRoomsRepo(knex),
    appservices: () => createAppserviceRepo(knex),
    mls: () => createMlsRepo(knex),
    purge: () => createPurgeRepo(knex, engine),
  };
}

/**
 * The repositories of one transaction, each built on first use: a transaction touches two or
 * three of the fifteen, and a message's send runs one.
 */
class TransactionRepos implements StorageRepos {
  private readonly built = new Map<keyof StorageRepos, unknown>();
  constructor(private readonly factories: RepoFactories) {}
  private repo<Name extends keyof StorageRepos>(name: Name): StorageRepos[Name] {
    let repo = this.built.get(name) as StorageRepos[Name] | undefined;
    if (repo === undefined) {
      repo = this.factories[name]();
      this.built.set(name, repo);
    }
    return repo;
  }
  get accounts() { return this.repo("accounts"); }
  get events() { return this.repo("events"); }
  get clientTxns() { return this.repo("clientTxns"); }
  get aliases() { return this.repo("aliases"); }
  get filters() { return this.repo("filters"); }
  get accountData() { return this.repo("accountData"); }
  get receipts() { return this.repo("receipts"); }
  get toDevice() { return this.repo("toDevice"); }
  get keys() { return this.repo("keys"); }
  get serverKeys() { return this.repo("serverKeys"); }
  get federation() { return this.repo("federation"); }
  get blockedRooms() { return this.repo("blockedRooms"); }
  get appservices() { return this.repo("appservices"); }
  get mls() { return this.repo("mls"); }
  get purge() { return this.repo("purge"); }
}

/**
 * `hotPath`: on SQLite, the send path's statements without knex (sqlite-hot-path.ts). `syncWal`:
 * how a SQLite group commit syncs the WAL (group-commit.ts); tests hold or fail it.
 */
export function createKnexStorage(knex: Knex, engine: Engine, options: { hotPath?: SqliteHotPath; syncWal?: SyncFile } = {}): Storage {
  const { hotPath } = options;
  const destSets = new DestSetCache();
  const revocationListeners: Array<(revocation: AccessRevocation) => void> = [];
  const announce = (revocation: AccessRevocation): void => {
    for (const listener of revocationListeners) listener(revocation);
  };
  // SQLite commits with an fsync each on its one connection: batching concurrent transactions
  // into one commit is what lets it keep up. PostgreSQL runs transactions in parallel on its pool
  // and already shares WAL flushes between concurrent commits.
  const groupCommit = engine === "sqlite" ? createGroupCommit(knex, { maxBatch: MAX_GROUP_COMMIT_BATCH, syncFile: options.syncWal }) : undefined;
  const runTransaction: <T>(work: (trx: Knex.Transaction) => Promise<T>) => Promise<T> = groupCommit?.transaction ?? ((work) => knex.transaction(work));

  return {
    engine,
    ...createRepos(knex, engine, announce, destSets, hotPath),

    async transaction(work) {
      // Revocations inside a transaction are announced once it has settled (committed or not).
      const revocations: AccessRevocation[] = [];
      try {
        return await runTransaction((trx) => work(new TransactionRepos(repoFactories(trx, engine, (revocation) => revocations.push(revocation), destSets, hotPath))));
      } finally {
        for (const revocation of revocations) announce(revocation);
      }
    },

    onAccessRevoked(listener) {
      revocationListeners.push(listener);
    },

    async maxStreamPos() {
      const union = streamTables.map((table) => `SELECT MAX(stream_pos) AS pos FROM ${table}`).join(" UNION ALL ");
      const row = (await knex.select(knex.raw("MAX(pos) AS pos")).from(knex.raw(`(${union}) AS positions`)).first()) as { pos: unknown } | undefined;
      return row?.pos === null || row?.pos === undefined ? 0 : toNumber(row.pos);
    },

    writeFailure() {
      return groupCommit?.failure();
    },

    poolStats() {
      return poolStatsOf(knex);
    },

    async close() {
      // Waits for the connection, so for any WAL sync in flight, before the WAL file is closed.
      await knex.destroy();
      groupCommit?.close();
    },
  };
}

/** Zeros before the pool exists (knex creates it lazily) and after it was destroyed. */
function poolStatsOf(knex: Knex): PoolStats {
  const pool = (knex.client as PooledKnexClient).pool;
  if (!pool) return { used: 0, free: 0, pending: 0 };
  return { used: pool.numUsed(), free: pool.numFree(), pending: pool.numPendingAcquires() + pool.numPendingCreates() };
}
