// PUT /_matrix/federation/{unstable LM,v2,v1}/send/{txnId} (LM draft "PUT /send/:txnId"): LPDUs
// for rooms this server is the hub of, PDUs from the hubs of rooms it takes part in, and EDUs.
// - At most 50 PDUs and 100 EDUs; a repeated (origin, txnId) is answered as the first time, from
//   the stored answer, without processing anything again; a different txnId while one from the
//   same origin is in flight is 400 M_BAD_STATE.
// - `failed_pdus` is keyed by the event ID of each object as received (an LPDU's own ID).
// - The answer is sent once every event is durable: each room's batch commits before it is built.
import type { RequestHandler, Router } from "../../app/http/router.js";
import type { Logger } from "pino";
import { Errcode, MatrixError } from "../../core/errors.js";
import { computeEventId } from "../../core/hashes.js";
import { isValidRoomId } from "../../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../../core/json.js";
import { DEFAULT_ROOM_VERSION, getRoomVersion } from "../../core/room-versions.js";
import type { RoomFederation, ReceiveResult } from "../../rooms/room-federation.js";
import type { Storage } from "../../storage/ports.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { EchoWaiters } from "./echoes.js";
import { prefetchEventKeys } from "./event-keys.js";
import type { JoinsInProgress } from "./joins.js";
import { lmPaths } from "../paths.js";
import { MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN } from "../outbound/transaction.js";


/** Handles the EDUs of a transaction (edus.ts). */
export type EduReceiver = (origin: string, edus: JsonObject[]) => Promise<void>;

export interface InboundSendDeps {
  storage: Storage;
  rooms: RoomFederation;
  keyRing: KeyRing;
  echoes: EchoWaiters;
  joins: JoinsInProgress;
  receiveEdus: EduReceiver;
  /** Told of every origin that reached us (its outbound queue may retry at once). */
  markReachable: (origin: string) => void;
  logger: Logger;
  now: () => number;
}

export function mountInboundSendRoute(router: Router, auth: RequestHandler, deps: InboundSendDeps): void {
  const inFlight = new Map<string, { txnId: string; answer: Promise<JsonObject> }>();

  const handler: RequestHandler = async (req, res) => {
    const origin = res.locals.origin as string;
    const txnId = req.params.txnId as string;
    deps.markReachable(origin);
    const body = req.body as unknown;
    if (!isJsonObject(body)) throw new MatrixError(Errcode.BAD_JSON, 400, "The transaction must be a JSON object");
    // `pdus` is required (an empty list at least); `edus` may be left out, but not be null.
    const pdus = body.pdus;
    const edus = body.edus === undefined ? [] : body.edus;
    if (!Array.isArray(pdus) || !Array.isArray(edus)) throw new MatrixError(Errcode.BAD_JSON, 400, "pdus and edus must be arrays");
    if (pdus.length > MAX_PDUS_PER_TXN) throw new MatrixError(Errcode.TOO_LARGE, 400, `At most ${MAX_PDUS_PER_TXN} PDUs per transaction`);
    if (edus.length > MAX_EDUS_PER_TXN) throw new MatrixError(Errcode.TOO_LARGE, 400, `At most ${MAX_EDUS_PER_TXN} EDUs per transaction`);

    const current = inFlight.get(origin);
    if (current !== undefined) {
      if (current.txnId !== txnId) throw new MatrixError(Errcode.BAD_STATE, 400, `Transaction ${current.txnId} from ${origin} is still being processed`);
      res.json(await current.answer);
      return;
    }
    const stored = await deps.storage.federation.getInboundTxn(origin, txnId);
    if (stored !== undefined) {
      res.json(stored.response);
      return;
    }
    // Processing goes on if the sender disconnects; a retry of the same txnId joins it.
    const answer = processTransaction(origin, txnId, pdus, edus, deps);
    inFlight.set(origin, { txnId, answer });
    try {
      res.json(await answer);
    } finally {
      inFlight.delete(origin);
    }
  };
  for (const path of lmPaths("/send/:txnId", "/v2/send/:txnId", "/v1/send/:txnId")) router.put(path, auth, handler);
}

async function processTransaction(origin: string, txnId: string, pdus: unknown[], edus: unknown[], deps: InboundSendDeps): Promise<JsonObject> {
  const failed: JsonObject = {};
  // Step 1: group by room, keeping each room's order.
  const byRoom = new Map<string, JsonObject[]>();
  for (const pdu of pdus) {
    if (!isJsonObject(pdu)) continue;
    const roomId = pdu.room_id;
    if (typeof roomId !== "string" || !isValidRoomId(roomId)) {
      failed[receivedIdOf(pdu)] = { error: "invalid or missing room_id" };
      continue;
    }
    let list = byRoom.get(roomId);
    if (!list) byRoom.set(roomId, (list = []));
    list.push(pdu);
  }
  await Promise.all(
    [...byRoom].map(async ([roomId, events]) => {
      try {
        for (const result of await receiveForRoom(origin, roomId, events, deps)) {
          if (result.error !== undefined) failed[result.receivedId] = { error: result.error };
        }
      } catch (error) {
        const message = error instanceof MatrixError ? error.message : "internal error";
        if (!(error instanceof MatrixError)) deps.logger.error({ err: error, room_id: roomId, origin }, "processing received events failed");
        for (const event of events) failed[receivedIdOf(event)] = { error: message };
      }
    }),
  );
  const eduObjects = edus.filter(isJsonObject);
  if (eduObjects.length > 0) {
    await deps.receiveEdus(origin, eduObjects).catch((error: unknown) => deps.logger.warn({ err: error, origin }, "EDUs not handled"));
  }
  const response: JsonObject = { failed_pdus: failed };
  await deps.storage.federation.putInboundTxn({ origin, txnId, response, receivedTs: deps.now() });
  if (Object.keys(failed).length > 0) deps.logger.info({ origin, txn_id: txnId, failed }, "transaction had refused events");
  return response;
}

async function receiveForRoom(origin: string, roomId: string, events: JsonObject[], deps: InboundSendDeps): Promise<ReceiveResult[]> {
  // A room being joined right now: kept until the replica exists (joins.ts).
  if (deps.joins.buffer(roomId, origin, events)) return events.map((event) => ({ receivedId: receivedIdOf(event) }));
  const info = await deps.rooms.roomInfo(roomId);
  if (info === undefined) {
    // Step 1.1: an unknown room rejects its events.
    return events.map((event) => ({ receivedId: receivedIdOf(event), error: `room ${roomId} is not known here` }));
  }
  const keys = await prefetchEventKeys(deps.keyRing, events);
  if (info.hostedHere) {
    // Step 2: LPDUs to their hub get the PDU fields; a full PDU from another server has no place here.
    const lpdus = events.filter((e) => e.auth_events === undefined && e.prev_events === undefined);
    const results = lpdus.length > 0 ? await deps.rooms.acceptLpdus(roomId, origin, lpdus, keys) : [];
    for (const event of events) {
      if (!lpdus.includes(event)) results.push({ receivedId: receivedIdOf(event, info.rules.id), error: `${roomId} is hosted here: participants send LPDUs` });
    }
    return results;
  }
  // Step 3: LPDUs reaching a participant are dropped.
  const pdus = events.filter((e) => !(e.auth_events === undefined && e.prev_events === undefined));
  const results = await deps.rooms.receivePdus(roomId, origin, pdus, keys);
  for (const result of results) {
    if (result.placed) deps.echoes.delivered({ event: result.placed.event, roomSeq: result.placed.roomSeq, streamPos: result.placed.streamPos }, info.rules);
  }
  return results;
}

function receivedIdOf(event: JsonObject, roomVersion: string = DEFAULT_ROOM_VERSION): string {
  const rules = getRoomVersion(roomVersion) ?? getRoomVersion(DEFAULT_ROOM_VERSION);
  try {
    return rules ? computeEventId(event, rules) : "$unknown";
  } catch {
    return "$unknown";
  }
}
