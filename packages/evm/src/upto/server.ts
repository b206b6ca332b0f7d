/**
 * Server face of `upto` on EVM: prices like `exact` (a money string or an asset amount, now the
 * MAXIMUM a request may cost), always with the Permit2 method, and copies the facilitator's
 * address from its `/supported` kind into `extra.facilitatorAddress` (clients must name it).
 * What the request really costs is decided after the handler ran (packages/server charge API).
 */
import type { PaymentPayload, PaymentRequirements, SchemeServer, SupportedKind } from "@tollgate/core";
import { getAddress, isAddress } from "viem";
import { defaultEvmAssets, exactEvmServer, type ExactEvmServerOptions } from "../exact/server.ts";
import { permit2PaymentKey } from "../exact/permit2-payload.ts";
import { parseUptoPermit2Payload } from "./payload.ts";

export type UptoEvmServerOptions = ExactEvmServerOptions;

export function uptoEvmServer(options: UptoEvmServerOptions = {}): SchemeServer {
  // Every asset is paid through Permit2 here (EIP-3009 cannot sign "at most").
  const assets = (options.assets ?? defaultEvmAssets).map((a) => ({ ...a, assetTransferMethod: "permit2" as const }));
  const exact = exactEvmServer({ ...options, assets });

  function enhanceRequirements(requirements: PaymentRequirements, kind: SupportedKind | undefined): PaymentRequirements {
    const filled = exact.enhanceRequirements ? exact.enhanceRequirements(requirements, kind) : requirements;
    const advertised = kind?.extra?.facilitatorAddress;
    const facilitatorAddress = typeof advertised === "string" && isAddress(advertised, { strict: false }) ? getAddress(advertised) : undefined;
    return { ...filled, extra: { ...filled.extra, assetTransferMethod: "permit2", ...(facilitatorAddress ? { facilitatorAddress } : {}) } };
  }

  function authorizationKey(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined {
    const p = parseUptoPermit2Payload(payload?.payload);
    if (!p.ok) return undefined;
    const a = p.value.permit2Authorization;
    return permit2PaymentKey(requirements.network, requirements.asset, a.from, a.nonce);
  }

  /** The permit's `deadline`: Permit2 refuses the transfer after it. */
  function validUntil(payload: PaymentPayload): number | undefined {
    const p = parseUptoPermit2Payload(payload?.payload);
    return p.ok ? Number(p.value.permit2Authorization.deadline) : undefined;
  }

  return { scheme: "upto", networks: exact.networks, parsePrice: exact.parsePrice, ...(exact.checkPayTo ? { checkPayTo: exact.checkPayTo } : {}), enhanceRequirements, authorizationKey, validUntil };
}
