// Sync filters uploaded by clients; IDs are a server-wide counter, checked against the owner.
import type { Knex } from "knex";
import type { FiltersRepo } from "../ports.js";
import { parseJsonObject, toNumber } from "./db.js";

export function createFiltersRepo(knex: Knex): FiltersRepo {
  return {
    async create(userId, filter) {
      const [row] = (await knex("filters").insert({ user_id: userId, json: JSON.stringify(filter) }).returning("filter_id")) as Array<{
        filter_id: unknown;
      }>;
      if (!row) throw new Error("filters: insert returned no id");
      return String(toNumber(row.filter_id));
    },

    async get(userId, filterId) {
      // A client may send any string; only a decimal ID can match, and PostgreSQL would reject
      // comparing a non-number to the integer column.
      if (!/^[0-9]{1,15}$/.test(filterId)) return undefined;
      const row = (await knex("filters").select("json").where({ user_id: userId, filter_id: Number(filterId) }).first()) as
        | { json: string }
        | undefined;
      return row && parseJsonObject(row.json);
    },
  };
}
