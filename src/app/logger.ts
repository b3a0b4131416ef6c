// The one logger: pino JSON lines on standard output. Components get child loggers that carry
// their context (`component`, `room_id`, `origin`, `txn_id`, `request_id`).
import pino, { type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "./config-schema.js";

export function createLogger(level: LogLevel, destination: DestinationStream = pino.destination({ dest: 1, sync: true })): Logger {
  return pino(
    {
      level,
      base: { service: "bobbin" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names read better than numbers in `jq` and log search.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
