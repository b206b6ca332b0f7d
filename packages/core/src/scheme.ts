/**
 * The three faces of a payment scheme. A scheme (`exact`, `upto`, a deferred/batched one)
 * on a chain family (EVM, Solana) implements each face in its own package; the core only
 * routes to them. Nothing here knows a chain.
 *
 * - client: turns a requirement into a signed `payload` (what goes in PaymentPayload.payload);
 * - server: turns a human price into an asset amount, and finishes requirements;
 * - facilitator: verifies and settles.
 *
 * Schemes whose settled amount differs from the authorized one (`upto`) read
 * `requirements.amount` at settle time as the actual charge, as the spec describes;
 * the facilitator face reports it in `SettleResponse.amount`.
 */
import type { Network } from "./caip2.ts";
import type { ChannelServerFace } from "./channel.ts";
import type {
  Extensions,
  PaymentPayload,
  PaymentRequired,
  PaymentRequirements,
  ResourceInfo,
  SettleResponse,
  SupportedKind,
  VerifyResponse,
} from "./types.ts";

export interface SchemeClient {
  readonly scheme: string;
  /** CAIP-2 ids or patterns (`eip155:*`) this client can pay on. */
  readonly networks: readonly string[];
  /** The address that will pay on `network` (for policies and receipts). */
  payer(network: Network): string;
  createPayload(requirements: PaymentRequirements, context: PayloadContext): Promise<Record<string, unknown>>;
  /**
   * Optional (x402 v2 only): extensions this scheme adds to the payment payload for the payload it
   * just created, e.g. EVM's `eip2612GasSponsoring` (a signed EIP-2612 permit) when the server
   * advertised that extension in `context.extensions`. Merged over the server's extensions, the
   * scheme's leaves winning (they are what it signed). Undefined or `{}`: nothing added.
   */
  payloadExtensions?(requirements: PaymentRequirements, payload: Record<string, unknown>, context: PayloadContext): Promise<Extensions | undefined>;
  /**
   * Optional: what the server answered to the paid request (stateful schemes: `batch-settlement`
   * moves its channel's charged total on a receipt, and resynchronizes on a corrective 402). A
   * returned PaymentRequired is paid once more (the scheme recovered); undefined: nothing to retry.
   */
  onPaymentResponse?(context: PaymentResponseContext): Promise<PaymentRequired | undefined>;
  /**
   * Optional: a client that already paid a URL with this scheme may send its next payment with
   * the first request (no 402 first), one round trip instead of two. Only for schemes whose
   * payment is a per-request authorization against state the server keeps (`batch-settlement`
   * vouchers): a refused one is answered with a 402 the scheme recovers from.
   */
  readonly payUpFront?: boolean;
}

export interface PaymentResponseContext {
  requirements: PaymentRequirements;
  /** The scheme payload that was sent. */
  payload: Record<string, unknown>;
  /** The answer's HTTP status; 0 when no answer came (the request may or may not have reached the server). */
  status: number;
  receipt?: SettleResponse;
  /** The PaymentRequired of a 402 answer. */
  required?: PaymentRequired;
}

export interface PayloadContext {
  x402Version: 1 | 2;
  resource?: ResourceInfo;
  extensions?: Extensions;
  /**
   * The nonce the authorization must carry, 0x + 64 hex digits, set by a `PaymentAuthorizer`
   * (e.g. an AP2 mandate wallet binds the payment to its mandate chain: nonce = keccak256(chain)).
   * A scheme that signs a nonce uses exactly this one (EVM `exact`: the EIP-3009 nonce, or the
   * Permit2 nonce as its uint256); one that cannot must throw rather than sign without it.
   */
  nonce?: string;
  /**
   * The caller passes every answer to this payment to `Payment.observe` (status 0 when none
   * came), as every transport through payAndRetry does (fetch, axios, MCP, A2A). A stateful
   * scheme may then make the next payment on the same state wait for that answer
   * (batch-settlement: one voucher per channel in flight), instead of signing on a guess.
   */
  observesAnswers?: boolean;
}

/** A price as a route declares it: a money string ("$0.01", "0.01 USDC") or an exact asset amount. */
export type Price = string | AssetAmount;

export interface AssetAmount {
  /** Atomic units, decimal string. */
  amount: string;
  asset: string;
  extra?: Record<string, unknown>;
}

export interface SchemeServer {
  readonly scheme: string;
  readonly networks: readonly string[];
  /** Resolves a price on `network` to an asset and atomic amount; throws on an unpayable price. */
  parsePrice(price: Price, network: Network): AssetAmount;
  /**
   * Why `payTo` cannot receive this scheme's payments on `network` (not an address of that chain,
   * the zero address), or undefined when it can. Asked once per route option, by `createPaywall`.
   */
  checkPayTo?(payTo: string, network: Network): string | undefined;
  /** Last touches from the facilitator's advertised kind (e.g. Solana's `feePayer`). */
  enhanceRequirements?(requirements: PaymentRequirements, kind: SupportedKind | undefined): PaymentRequirements;
  /**
   * The authorization a payload carries, as a key that is the same for every copy of one payment
   * however its bytes are re-encoded (EVM: network, asset, payer, nonce; Solana: the signed
   * message). The paywall lets one request per key run at a time. Undefined when the payload does
   * not parse (the facilitator then refuses it). Not a proof of anything: no signature is checked.
   */
  authorizationKey?(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined;
  /**
   * Unix seconds after which the payload's authorization can no longer settle (EVM: EIP-3009
   * `validBefore`, Permit2 `deadline`), when it says; undefined otherwise. Work that must end
   * while the payment can still settle (a metered stream) ends by then. Not a proof of anything.
   */
  validUntil?(payload: PaymentPayload): number | undefined;
  /**
   * Deferred schemes (`batch-settlement`): the channel face. With it the paywall takes vouchers
   * off-chain, serves at once and claims later (packages/server/src/channels) instead of settling
   * each request.
   */
  readonly channels?: ChannelServerFace;
}

/**
 * Who asked a facilitator to settle, as its service authenticated them (an API key's scope); set
 * by the service, never read from a request body. A scheme that signs on a receiver's behalf
 * (batch-settlement's delegated receiver authorizer) signs only for the receivers listed.
 */
export interface Caller {
  /** The receivers (`payTo`) this caller acts for; absent: any (an unrestricted key). */
  readonly receivers?: readonly string[];
}

export interface SchemeFacilitator {
  readonly scheme: string;
  /** The exact CAIP-2 networks served. */
  readonly networks: readonly Network[];
  /** Addresses that pay the fees on `network`, for `/supported`. */
  signers(network: Network): string[];
  /** Scheme-specific `extra` for the `/supported` kind (e.g. `feePayer`). */
  kindExtra?(network: Network): Record<string, unknown> | undefined;
  verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse>;
  /** `caller`: who asked, as the facilitator service authenticated them (absent: anyone may). */
  settle(payload: PaymentPayload, requirements: PaymentRequirements, caller?: Caller): Promise<SettleResponse>;
  /**
   * Who authorized this payment, checked cryptographically, and its unique authorization key
   * (e.g. `network|asset|payer|nonce` for EIP-3009): two payloads with one key can move money
   * at most once. Off-chain where the scheme allows (an ECDSA recovery, an ed25519 check), so it
   * is cheap enough to run before anything is written or rate-limited. The facilitator service
   * keys its ledger, its settle-once claim, its per-payer limits and its payment-identifier
   * index on the result: never on an unverified field. A payload whose signer cannot be
   * established is a failure with the scheme's reason code.
   */
  authenticate?(payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult>;
}

export type AuthenticateResult = ({ ok: true } & PaymentIdentity) | { ok: false; reason: string; message: string; payer?: string };

export interface PaymentIdentity {
  /** The verified signer (lower-case for EVM addresses). */
  payer: string;
  /** Unique per authorization: the unit that settles at most once. */
  key: string;
}
