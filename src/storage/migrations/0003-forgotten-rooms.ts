// Rooms a user has forgotten (Client-Server API `POST /rooms/{roomId}/forget`): a former member who
// forgot a room no longer gets it in `include_leave` syncs and can no longer read its history.
// Joining, being invited or knocking again forgets the forgetting.
import type { Knex } from "knex";
import type { Migration } from "./index.js";

export const forgottenRoomsSchema: Migration = {
  name: "0003-forgotten-rooms",

  async up(knex: Knex): Promise<void> {
    await knex.schema.createTable("forgotten_rooms", (t) => {
      t.text("user_id").notNullable();
      t.text("room_id").notNullable();
      t.primary(["user_id", "room_id"]);
    });
  },

  async down(knex: Knex): Promise<void> {
    await knex.schema.dropTableIfExists("forgotten_rooms");
  },
};
