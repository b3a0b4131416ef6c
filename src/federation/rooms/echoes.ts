// A participant's client send waits for the hub's echo of its LPDU (LM draft "Sending Events": the
// hub sends the completed PDU back to every participant, the original sender included). Waiters
// are keyed by the LPDU's event ID, which the participant computes over what it sent and again over
// the LPDU form of each PDU it receives. A waiter is registered before the LPDU is sent, since the
// echo may arrive before the hub's answer to the transaction.
import { Errcode, MatrixError } from "../../core/errors.js";
import type { Pdu } from "../../core/events.js";
import { computeEventId } from "../../core/hashes.js";
import type { JsonObject } from "../../core/json.js";
import type { RoomVersionRules } from "../../core/room-versions.js";
import { lpduFormOf } from "../../core/signing.js";
import type { EchoedEvent } from "../../rooms/hub-link.js";

interface Waiter {
  resolve(echo: EchoedEvent): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class EchoWaiters {
  private readonly waiters = new Map<string, Waiter>();

  /** Resolves with the stored echo of the LPDU `lpduId`, or rejects after `timeoutMs`. */
  wait(lpduId: string, timeoutMs: number): { echo: Promise<EchoedEvent>; cancel(error: Error): void } {
    let waiter!: Waiter;
    const echo = new Promise<EchoedEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(lpduId);
        reject(new MatrixError(Errcode.UNKNOWN, 504, `the room's hub did not send the event back within ${Math.round(timeoutMs / 1000)} s; it may still arrive`));
      }, timeoutMs);
      timer.unref();
      waiter = { resolve, reject, timer };
    });
    this.waiters.set(lpduId, waiter);
    // A cancelled wait is reported to the caller by the send itself; never an unhandled rejection.
    echo.catch(() => undefined);
    return {
      echo,
      cancel: (error) => {
        if (this.waiters.get(lpduId) !== waiter) return;
        this.waiters.delete(lpduId);
        clearTimeout(waiter.timer);
        waiter.reject(error);
      },
    };
  }

  /** A PDU from a hub was stored: wakes whoever waits for the LPDU it was completed from. */
  delivered(echo: EchoedEvent, rules: RoomVersionRules): void {
    if (this.waiters.size === 0 || echo.event.pdu.hub_server === undefined) return;
    const lpduId = lpduIdOf(echo.event.pdu, rules);
    const waiter = this.waiters.get(lpduId);
    if (!waiter) return;
    this.waiters.delete(lpduId);
    clearTimeout(waiter.timer);
    waiter.resolve(echo);
  }

  close(): void {
    for (const [id, waiter] of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new MatrixError(Errcode.UNKNOWN, 503, "the server is shutting down"));
      this.waiters.delete(id);
    }
  }
}

/** The event ID of the LPDU a hub completed into `pdu`. */
export function lpduIdOf(pdu: Pdu, rules: RoomVersionRules): string {
  return computeEventId(lpduFormOf(pdu as unknown as JsonObject), rules);
}
