// Application services (Application Service API): registrations, namespaces, the transaction
// pusher, queries and ping. app/ wires it; client-api sees it through AppserviceAccess.
export { withServiceAliases } from "./alias-joins.js";
export { createAppservices, type Appservices, type AppserviceIdentity, type AppserviceOverview, type PingVerdict } from "./appservices.js";
export { createBridgeClient, DEFAULT_BRIDGE_CLIENT_SETTINGS, type BridgeClient } from "./bridge-client.js";
export { loadRegistrationFiles, RegistrationError } from "./load.js";
export { DEFAULT_PUSHER_SETTINGS, MAX_EVENTS_PER_TXN, type PusherSettings, type RoomFacts } from "./pusher.js";
export { parseRegistration, validateRegistration, type AppserviceRegistration } from "./registration.js";
export { appserviceClientRoutes } from "./routes.js";
