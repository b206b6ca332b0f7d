/**
 * The paywall's start-up question to its facilitator: can you settle every payment option my
 * routes offer? Asked once (in the background by `createPaywall`, or awaited with
 * `paywall.ready()`), so a network or scheme the facilitator does not serve is named when the
 * server starts, not discovered when the first payer finds the option missing from a 402.
 */
import { v1NameToNetwork, type FacilitatorClient, type PaymentRequirements, type SupportedKind, type SupportedResponse, type V1NetworkNames } from "@tollgate/core";
import { PaywallConfigError, type CompiledRoute } from "./routes.ts";

/** One route option the facilitator cannot settle. */
export interface UnservableOption {
  route: string;
  scheme: string;
  network: string;
}

export interface SupportReport {
  /** What the facilitator advertised. */
  supported: SupportedKind[];
  /** Route options it cannot settle (they are left out of every 402). */
  unservable: UnservableOption[];
}

/**
 * The facilitator's kind for one option: a v2 kind on the same CAIP-2 network, else a v1 kind
 * whose network name maps to it. The one place both the start-up check and the 402 decide this.
 */
export function supportedKindFor(supported: SupportedResponse, requirements: PaymentRequirements, names: V1NetworkNames): { kind: SupportedKind; v1: boolean } | undefined {
  const v2 = supported.kinds.find((k) => k.x402Version === 2 && k.scheme === requirements.scheme && k.network === requirements.network);
  if (v2) return { kind: v2, v1: false };
  const v1 = supported.kinds.find((k) => k.x402Version === 1 && k.scheme === requirements.scheme && v1NameToNetwork(k.network, names) === requirements.network);
  return v1 ? { kind: v1, v1: true } : undefined;
}

/** Asks `/supported` and lists the options of `routes` it does not cover. Throws what the client throws (FacilitatorError). */
export async function checkSupport(facilitator: FacilitatorClient, routes: readonly CompiledRoute[], names: V1NetworkNames): Promise<SupportReport> {
  const supported = await facilitator.supported();
  const unservable: UnservableOption[] = [];
  for (const route of routes) {
    for (const o of route.options) {
      if (!supportedKindFor(supported, o.requirements, names)) unservable.push({ route: route.key, scheme: o.requirements.scheme, network: o.requirements.network });
    }
  }
  return { supported: supported.kinds, unservable };
}

/** "route "GET /x": exact on eip155:1 … the facilitator supports: exact on eip155:8453 (v2), …" */
export function describeUnservable(report: SupportReport): string {
  const options = report.unservable.map((u) => `route "${u.route}": ${u.scheme} on ${u.network}`).join("; ");
  const kinds = report.supported.length > 0 ? [...new Set(report.supported.map((k) => `${k.scheme} on ${k.network} (v${k.x402Version})`))].join(", ") : "nothing";
  return `the facilitator cannot settle ${report.unservable.length === 1 ? "this payment option" : "these payment options"}, so they are not offered: ${options}. It supports: ${kinds}`;
}

/** `paywall.ready()`'s verdict: the report, or a PaywallConfigError naming what cannot be served. */
export function requireServable(report: SupportReport): SupportReport {
  if (report.unservable.length > 0) throw new PaywallConfigError(describeUnservable(report));
  return report;
}
