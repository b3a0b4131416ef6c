// Bobbin's reference MLS client (docs/encrypted-rooms.md). Imports only src/core of the server.
export * from "./algorithms.js";
export { MlsClient, epochConflictOf, type CommitOutcome, type MlsClientOptions } from "./mls-client.js";
export { EncryptedRooms, type ReceivedMessage, type SyncResult } from "./encrypted-rooms.js";
export { ClientServerApi, MatrixApiError, type Session } from "./client-server-api.js";
export { MlsDevice, type KeyPackageTargets } from "./device.js";
export { RoomGroup, type PendingCommit, type GroupMember } from "./room-group.js";
export { resolveIntent, readClaimedKeyPackages, type CommitIntent, type ClaimedKeyPackage, type DeviceRef } from "./commit-intent.js";
export { encodeDeviceIdentity, decodeDeviceIdentity, type DeviceIdentity } from "./identity.js";
export { keyVersionOf, keyPackageRefOf } from "./key-packages.js";
export { signDeviceObject, verifyDeviceObject, type DeviceObject } from "./device-object.js";
export * from "./event-content.js";
