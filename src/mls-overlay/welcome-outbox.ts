// Welcomes that survive a crash and a retried request (MLS wire contract section 5; DESIGN.md
// "Welcome and GroupInfo are stapled to the commit"). A Welcome may go out only once the hub has
// accepted its commit, and must then go out even if the request that carried it died. So:
//   1. `/commit` records the Welcome (targets and ciphertext) before the commit event is sent;
//   2. the room writer's transaction that appends the commit event binds it to the event ID (the
//      overlay's policy batch, on the hub and on a participant alike: whoever appends it);
//   3. once bound it is delivered, by to-device message whose transaction ID is the commit event's,
//      then deleted — after `/commit` returns, after the append committed (when the request died
//      in between), and at startup for any left bound (a crash). The to-device transaction ID makes
//      a second attempt a no-op, so no device gets a Welcome twice.
// A record still unbound once the room's group has moved past its epoch, or after a day, belongs to
// a refused commit and is dropped: a refused commit delivers nothing.
import type { Logger } from "pino";
import type { JsonObject } from "../core/json.js";
import type { MlsPendingWelcomeRow, Storage } from "../storage/ports.js";
import { WELCOME_ALGORITHM } from "../core/mls-wire.js";

/** Sends `m.room.encrypted` to-device messages as `sender` under transaction `txnId` (idempotent per sender device and txnId). */
export type SendWelcome = (sender: { userId: string; deviceId: string }, txnId: string, messages: Map<string, Map<string, JsonObject>>) => Promise<void>;

/** Pending Welcomes looked at in one startup pass. */
const RESUME_BATCH = 1_000;
/** An unbound record this old belongs to a commit no hub appended (e.g. a room's first commit, refused). */
const UNBOUND_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** The to-device transaction of the Welcome of commit `eventId`: the same on every attempt. */
export const welcomeTxnId = (eventId: string): string => `org.bobbin.mls.welcome:${eventId}`;

/** The to-device messages of a bound Welcome: one per target device, naming the final event ID. */
export function welcomeMessages(row: MlsPendingWelcomeRow & { eventId: string }): Map<string, Map<string, JsonObject>> {
  const messages = new Map<string, Map<string, JsonObject>>();
  for (const { userId, deviceId } of row.targets) {
    let devices = messages.get(userId);
    if (!devices) messages.set(userId, (devices = new Map()));
    devices.set(deviceId, { algorithm: WELCOME_ALGORITHM, ciphertext: row.welcome, commit_event_id: row.eventId });
  }
  return messages;
}

export class WelcomeOutbox {
  /** Deliveries running now, by room and commit: a second caller waits for the first. */
  private readonly running = new Map<string, Promise<boolean>>();

  constructor(private readonly deps: { storage: Storage; send?: SendWelcome; logger: Logger; now: () => number }) {}

  /** Step 1: records the Welcome of a commit about to be sent (a retry's second record is ignored). */
  async stage(row: Omit<MlsPendingWelcomeRow, "eventId">): Promise<void> {
    await this.deps.storage.mls.addPendingWelcome({ ...row, eventId: null });
  }

  /** Drops a commit's Welcome that was never bound (its commit was refused). */
  async discard(roomId: string, commitHash: string): Promise<void> {
    const row = await this.deps.storage.mls.getPendingWelcome(roomId, commitHash);
    if (row && row.eventId === null) await this.deps.storage.mls.deletePendingWelcome(roomId, commitHash);
  }

  /**
   * Step 3: delivers the commit's Welcome when it is bound to its event. True when it was
   * delivered now or earlier (no record left), false when it waits for its event.
   */
  deliver(roomId: string, commitHash: string, send: SendWelcome | undefined = this.deps.send): Promise<boolean> {
    const key = `${roomId}\u0000${commitHash}`;
    const running = this.running.get(key);
    if (running) return running;
    const delivery = (async () => {
      const row = await this.deps.storage.mls.getPendingWelcome(roomId, commitHash);
      if (!row) return true;
      if (row.eventId === null) return false;
      if (!send) throw new Error("no to-device sender for MLS Welcomes");
      await send({ userId: row.senderUser, deviceId: row.senderDevice }, welcomeTxnId(row.eventId), welcomeMessages({ ...row, eventId: row.eventId }));
      await this.deps.storage.mls.deletePendingWelcome(roomId, commitHash);
      return true;
    })().finally(() => this.running.delete(key));
    this.running.set(key, delivery);
    return delivery;
  }

  /** deliver() for the overlay's commit hook: failures are logged (startup or a retry delivers later). */
  deliverLater(roomId: string, commitHash: string): void {
    this.deliver(roomId, commitHash).catch((error: unknown) => this.deps.logger.warn({ err: error, room_id: roomId, commit_hash: commitHash }, "MLS Welcome not delivered yet; it stays pending"));
  }

  /**
   * At startup: delivers every bound Welcome a crash left behind, and drops unbound ones of
   * refused commits (module comment). Returns how many it delivered.
   */
  async resume(): Promise<number> {
    const { storage, logger } = this.deps;
    let delivered = 0;
    for (const row of await storage.mls.listPendingWelcomes(RESUME_BATCH)) {
      try {
        if (row.eventId !== null) {
          if (await this.deliver(row.roomId, row.commitHash)) delivered++;
          continue;
        }
        const group = await storage.mls.getGroup(row.roomId);
        if ((group && group.epoch > row.epoch) || row.createdTs < this.deps.now() - UNBOUND_MAX_AGE_MS) await storage.mls.deletePendingWelcome(row.roomId, row.commitHash);
      } catch (error) {
        logger.warn({ err: error, room_id: row.roomId, commit_hash: row.commitHash }, "pending MLS Welcome not delivered at startup");
      }
    }
    if (delivered > 0) logger.info({ delivered }, "delivered MLS Welcomes left pending by the last run");
    return delivered;
  }
}
