// An index of the to-device inbox by stream position alone: application services that receive
// to-device messages (MSC4203) read every inbox after their cursor, which without it is a scan
// of the whole table on every push.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const toDeviceStreamIndex: Migration = {
  name: "0010-to-device-stream-index",

  async up(knex: Knex): Promise<void> {
    await knex.schema.alterTable("to_device", (t) => {
      t.index(["stream_pos"], "to_device_stream_pos");
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.alterTable("to_device", (t) => {
      t.dropIndex(["stream_pos"], "to_device_stream_pos");
    });
  },
};
