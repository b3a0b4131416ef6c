// The knex implementation of Storage: every repository bound to the pool, or to a transaction.
import type { Knex } from "knex";
import type { Storage, StorageRepos } from "../ports.js";
import { createAccountDataRepo } from "./account-data.js";
import { createAccountsRepo } from "./accounts.js";
import { createAliasesRepo } from "./aliases.js";
import { createClientTxnsRepo } from "./client-txns.js";
import { type Engine, toNumber } from "./db.js";
import { createEventsRepo } from "./events.js";
import { createFiltersRepo } from "./filters.js";
import { createKeysRepo } from "./keys.js";
import { createReceiptsRepo } from "./receipts.js";
import { createToDeviceRepo } from "./to-device.js";

/** Every table with a stream_pos column, plus the retired-positions row (see stream_retired). */
const streamTables = ["events", "account_data", "receipts", "to_device", "device_keys", "device_list_changes", "stream_retired"];

export function createRepos(knex: Knex, engine: Engine): StorageRepos {
  return {
    accounts: createAccountsRepo(knex),
    events: createEventsRepo(knex),
    clientTxns: createClientTxnsRepo(knex),
    aliases: createAliasesRepo(knex),
    filters: createFiltersRepo(knex),
    accountData: createAccountDataRepo(knex),
    receipts: createReceiptsRepo(knex),
    toDevice: createToDeviceRepo(knex),
    keys: createKeysRepo(knex, engine),
  };
}

export function createKnexStorage(knex: Knex, engine: Engine): Storage {
  return {
    engine,
    ...createRepos(knex, engine),

    transaction(work) {
      return knex.transaction((trx) => work(createRepos(trx, engine)));
    },

    async maxStreamPos() {
      const union = streamTables.map((table) => `SELECT MAX(stream_pos) AS pos FROM ${table}`).join(" UNION ALL ");
      const row = (await knex.select(knex.raw("MAX(pos) AS pos")).from(knex.raw(`(${union}) AS positions`)).first()) as { pos: unknown } | undefined;
      return row?.pos === null || row?.pos === undefined ? 0 : toNumber(row.pos);
    },

    async close() {
      await knex.destroy();
    },
  };
}
