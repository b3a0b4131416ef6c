// How MLS refusals reach clients (MLS wire contract section 5), also when the refusal is a remote
// hub's `failed_pdus` reason that the participant's hub link wrapped in its own message.
import { mlsError, mlsErrorFromMessage } from "../../src/mls-overlay/mls-overlay.js";
import { EPOCH_CONFLICT_ERRCODE } from "../../src/core/mls-wire.js";

test("each kind has its status and errcode; an epoch conflict carries current_epoch", () => {
  expect(mlsError({ kind: "epoch_conflict", reason: "late", currentEpoch: 4 }).toJSON()).toMatchObject({ errcode: EPOCH_CONFLICT_ERRCODE, current_epoch: 4 });
  expect(mlsError({ kind: "epoch_conflict", reason: "late", currentEpoch: 4 }).httpStatus).toBe(409);
  expect(mlsError({ kind: "policy", reason: "not joined" })).toMatchObject({ errcode: "M_FORBIDDEN", httpStatus: 403 });
  expect(mlsError({ kind: "malformed", reason: "trailing bytes" })).toMatchObject({ errcode: "M_BAD_JSON", httpStatus: 400 });
});

test("a hub's refusal relayed by the participant maps back to the same error", () => {
  for (const original of [mlsError({ kind: "epoch_conflict", reason: "the commit is for epoch 2", currentEpoch: 3 }), mlsError({ kind: "policy", reason: "x" }), mlsError({ kind: "malformed", reason: "y" })]) {
    const relayed = mlsErrorFromMessage(`The room's hub hub.example refused the event: ${original.message}`);
    expect(relayed?.toJSON()).toEqual(original.toJSON());
    expect(relayed?.httpStatus).toBe(original.httpStatus);
  }
  expect(mlsErrorFromMessage("The room's hub hub.example refused the event: not allowed (auth rule 5)")).toBeUndefined();
});
