// EDUs received in a transaction (LM draft "Ephemeral Data Units"; DESIGN.md: to-device messages
// and device-list updates go straight to the target user's server, typing and receipts through the
// hub). This first version logs what it does not handle yet.
import type { Logger } from "pino";
import type { JsonObject } from "../../core/json.js";
import type { Storage } from "../../storage/ports.js";
import type { EduReceiver } from "./inbound-send.js";

export function createEduReceiver(deps: { storage: Storage; serverName: string; logger: Logger }): EduReceiver {
  return async (origin: string, edus: JsonObject[]) => {
    for (const edu of edus) {
      deps.logger.debug({ origin, edu_type: edu.edu_type ?? edu.type }, "EDU received and not handled");
    }
  };
}
