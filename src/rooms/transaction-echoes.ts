// Remembers recent (event ID -> sender device, transaction ID) pairs so the sending device sees
// `unsigned.transaction_id` on its own events (Client-Server API "Local echo"). In memory only and
// bounded: after a restart or for old events clients match by event ID, which they also receive
// in the send response.
export class TransactionEchoes {
  private readonly byEventId = new Map<string, { userId: string; deviceId: string; txnId: string }>();

  constructor(private readonly capacity = 10_000) {}

  remember(eventId: string, userId: string, deviceId: string, txnId: string): void {
    this.byEventId.set(eventId, { userId, deviceId, txnId });
    if (this.byEventId.size > this.capacity) {
      const oldest = this.byEventId.keys().next().value;
      if (oldest !== undefined) this.byEventId.delete(oldest);
    }
  }

  /** The transaction ID of `eventId` if `userId`'s device `deviceId` sent it. */
  transactionIdFor(eventId: string, userId: string, deviceId: string): string | undefined {
    const entry = this.byEventId.get(eventId);
    return entry && entry.userId === userId && entry.deviceId === deviceId ? entry.txnId : undefined;
  }
}
