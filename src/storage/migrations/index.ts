// Bobbin's database migrations, as code: an ordered list handed to knex through a custom migration
// source. Nothing is loaded from disk at run time, so the same list works under jest (TypeScript)
// and in the compiled server (dist/), on SQLite and PostgreSQL alike.
//
// Adding a migration: create `NNNN-what-it-does.ts` exporting a `Migration`, append it below.
// Never edit or reorder a migration that has shipped; knex records applied names.
import type { Knex } from "knex";
import { initialSchema } from "./0001-initial-schema.js";
import { serverKeysSchema } from "./0002-server-keys.js";
import { forgottenRoomsSchema } from "./0003-forgotten-rooms.js";
import { replicaHistorySchema } from "./0005-replica-history.js";
import { federationSchema } from "./0004-federation.js";
import { blockedRoomsSchema } from "./0006-blocked-rooms.js";
import { appserviceSchema } from "./0007-appservice.js";
import { mlsSchema } from "./0008-mls.js";
import { mlsWelcomesSchema } from "./0009-mls-welcomes.js";
import { toDeviceStreamIndex } from "./0010-to-device-stream-index.js";

export interface Migration {
  /** Recorded in the `knex_migrations` table; unique and stable forever. */
  readonly name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly Migration[] = [initialSchema, serverKeysSchema, forgottenRoomsSchema, federationSchema, replicaHistorySchema, blockedRoomsSchema, appserviceSchema, mlsSchema, mlsWelcomesSchema, toDeviceStreamIndex];

/** The knex migration source over `migrations`. */
export function migrationSource(list: readonly Migration[] = migrations): Knex.MigrationSource<Migration> {
  return {
    getMigrations: async () => [...list],
    getMigrationName: (migration) => migration.name,
    getMigration: async (migration) => ({ up: (knex: Knex) => migration.up(knex), down: (knex: Knex) => migration.down(knex) }),
  };
}
