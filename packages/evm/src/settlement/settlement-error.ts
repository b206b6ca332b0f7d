/**
 * An error with a reason code, for hooks that refuse work: a signer (e.g. the facilitator's
 * lease-checking wrapper) throws it from `signTransaction`, and the engine answers the
 * settlement "failed" with that reason (nothing was sent). Results themselves are values
 * (`SettlementResult`), never this error.
 */
export class SettlementError extends Error {
  override readonly name = "SettlementError";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}
