// The room service's way to a room whose hub is another server (LM draft "Sending Events": a
// participant sends an LPDU to the hub and learns the event's final form from the hub's fan-out).
// The federation layer implements it; the room service only declares what it needs (DESIGN.md
// "Layers": a lower layer declares the interface, app/ injects the implementation).
import type { Lpdu } from "../core/events.js";
import type { StoredEvent } from "../storage/ports.js";

export interface HubLink {
  /**
   * Sends `lpdu` to `hubServer` and resolves once the hub's completed PDU has come back and has
   * been stored here (the "echo"), or rejects with the hub's refusal as a MatrixError.
   */
  sendLpdu(hubServer: string, lpdu: Lpdu): Promise<StoredEvent>;
}
