/**
 * AP2 mandates on a route (`mandate: "required"`): the 402 advertises the `ap2-mandate` extension
 * and every payment must carry a mandate chain that verifies and is bound to it (see
 * docs/extensions/ap2-mandate.md). The check runs before the facilitator is asked anything, so a
 * payment without a valid mandate is refused before anything can settle.
 */
import { type Extensions, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import {
  AP2_MANDATE,
  ap2MandateAdvertisement,
  statusListRevocation,
  verifyMandatedPayment,
  type PublicMandateJwk,
} from "@tollgate/mandates";

export interface MandateRouteOptions {
  required: true;
  /** User keys whose mandates are accepted; absent: the key the client presents (see the extension doc). */
  trustedIssuers?: readonly PublicMandateJwk[];
  /** URL of a published status list (`{ type: "tollgate-mandate-status-list", revoked: [...] }`). */
  statusListUrl?: string;
  /** Or any revocation lookup by mandate id. */
  isRevoked?: (mandateId: string) => boolean | Promise<boolean>;
}

export type MandateRouteConfig = "required" | MandateRouteOptions;

export interface CompiledMandate {
  advertisement: Extensions[string];
  check(payload: PaymentPayload, requirements: PaymentRequirements, resourceUrl: string): Promise<{ reason: string; message: string } | undefined>;
}

export function compileMandate(key: string, config: MandateRouteConfig | undefined): CompiledMandate | undefined {
  if (config === undefined) return undefined;
  const o: MandateRouteOptions = config === "required" ? { required: true } : config;
  if (typeof o !== "object" || o === null || o.required !== true) throw new TypeError(`route "${key}": mandate must be "required" or { required: true, … }`);
  if (o.statusListUrl !== undefined && o.isRevoked !== undefined) throw new TypeError(`route "${key}": mandate takes statusListUrl or isRevoked, not both`);
  const isRevoked = o.isRevoked ?? (o.statusListUrl !== undefined ? statusListRevocation(o.statusListUrl) : undefined);
  return {
    advertisement: ap2MandateAdvertisement(),
    async check(payload, requirements, resourceUrl) {
      const res = await verifyMandatedPayment(payload, requirements, {
        resourceUrl,
        ...(o.trustedIssuers ? { trustedIssuers: o.trustedIssuers } : {}),
        ...(isRevoked ? { isRevoked } : {}),
      });
      return res.ok ? undefined : { reason: res.reason, message: res.message };
    },
  };
}

export { AP2_MANDATE };
