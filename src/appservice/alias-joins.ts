// Joining (or knocking) by an alias of this server that does not exist yet: when it lies in an
// application service's alias namespace, the service is asked first (Application Service API
// "Querying": the homeserver queries the service for an unknown alias, e.g. to join it; the
// service may create the room and alias before it answers). The room service then resolves the
// alias as usual, and a 404 stays a 404 when no service created it.
import { serverNameOf } from "../core/identifiers.js";
import type { RoomService } from "../rooms/room-service.js";
import type { AliasesRepo } from "../storage/ports.js";

export interface AliasJoinDeps {
  serverName: string;
  aliases: Pick<AliasesRepo, "get">;
  /** Asks the services whose namespaces hold the alias; true when one answered 200. */
  queryAlias(alias: string): Promise<boolean>;
}

/** The room service with `join` and `knock` asking the services about unknown local aliases first. */
export function withServiceAliases(rooms: RoomService, deps: AliasJoinDeps): RoomService {
  async function askFor(roomIdOrAlias: string): Promise<void> {
    if (!roomIdOrAlias.startsWith("#") || serverNameOf(roomIdOrAlias) !== deps.serverName) return;
    if (await deps.aliases.get(roomIdOrAlias)) return;
    await deps.queryAlias(roomIdOrAlias);
  }
  return {
    ...rooms,
    async join(sender, roomIdOrAlias, reason, serverHints) {
      await askFor(roomIdOrAlias);
      return rooms.join(sender, roomIdOrAlias, reason, serverHints);
    },
    async knock(sender, roomIdOrAlias, reason, serverHints) {
      await askFor(roomIdOrAlias);
      return rooms.knock(sender, roomIdOrAlias, reason, serverHints);
    },
  };
}
