// The room model: the linear log, event building on both sides, the receive pipeline, visibility.
export { RoomLog, hubServerOf } from "./room-log.js";
export { buildLpdu, completeLpdu, buildHubEvent, type EventDraft, type RoomTip, type ServerIdentity } from "./event-builder.js";
export { parsePdu, parseLpdu, type SchemaResult } from "./event-schema.js";
export { receivePdu, acceptLpdu, checkPduIntegrity, type PduIntegrity, type PduOutcome, type PduContext, type LpduOutcome, type LpduContext, type RoomPolicy } from "./pipeline.js";
export { historyVisibilityIn, visibilityAt, isVisibleToUser, isVisibleToServer, type HistoryVisibility, type VisibilityLog } from "./history-visibility.js";
