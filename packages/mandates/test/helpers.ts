import { generateMandateKey, issueOpenMandate, type MandateKeyPair, type MandatePayment, type OpenMandateConstraints } from "../src/index.ts";

export const NETWORK = "eip155:8453";
export const USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
export const OTHER_TOKEN = "0x4200000000000000000000000000000000000006";
export const PAYEE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
export const AGENT_PAYEE = "eip155:8453:0x8004A169FB4a3325136EB29fA0ceB6D2e539a432#42";
export const T0 = 1_800_000_000; // fixed clock, Unix seconds

let keys: Promise<{ user: MandateKeyPair; agent: MandateKeyPair; other: MandateKeyPair }> | undefined;
export function testKeys() {
  keys ??= Promise.all([generateMandateKey(), generateMandateKey(), generateMandateKey()]).then(([user, agent, other]) => ({ user, agent, other }));
  return keys;
}

export const constraints: OpenMandateConstraints = {
  allowedPayees: [PAYEE, { id: AGENT_PAYEE, name: "Weather agent" }],
  allowedAssets: [{ network: NETWORK, asset: USDC, usdDecimals: 6, description: "USDC on Base" }],
  amountRange: { currency: "USD", min: "0.001", max: "5" },
  budget: { currency: "USD", max: "10", periodSeconds: 86_400 },
  recurrence: { frequency: "ON_DEMAND", maxOccurrences: 100 },
  notBefore: T0 - 60,
  notAfter: T0 + 30 * 86_400,
};

export async function openMandate(over: Partial<Parameters<typeof issueOpenMandate>[0]> = {}) {
  const { user, agent } = await testKeys();
  return issueOpenMandate({
    userKey: user.privateJwk,
    agentPublicJwk: agent.publicJwk,
    constraints,
    expiresAt: T0 + 30 * 86_400,
    issuedAt: T0 - 120,
    id: "mandate-1",
    ...over,
  });
}

export const payment = (over: Partial<MandatePayment> = {}): MandatePayment => ({
  payTo: PAYEE,
  amount: "1000000", // 1 USDC
  asset: USDC,
  network: NETWORK,
  at: T0,
  ...over,
});
