/**
 * `tollgate mandate issue | show | revoke`: AP2 open Payment Mandates from the command line.
 *
 * Keys (ES256) live in encrypted keystores under the config directory, as the wallet's EVM key
 * does: the P-256 private scalar is sealed in the same v3 keystore format (scrypt + AES-128-CTR;
 * the format's `address` is meaningless for it), with the public JWK beside it. `mandate-user.json`
 * is the user's key (signs mandates), `mandate-agent.json` the agent's (named in `cnf.jwk`, signs
 * closed mandates in `tollgate pay --mandate`). Both are created on first use.
 *
 * An issued mandate is kept as `mandates/<id>.json` ({ id, open, userPublicJwk, agentPublicJwk });
 * revocation adds its id to `mandates/status.json`, the status list the issuer publishes.
 * Budgets are counted in the one budget store (`budgets.json`, shared with `tollgate pay --budget`).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { findUsdc } from "@tollgate/core";
import { createKeystore, decryptKeystore, type CreateKeystoreOptions, type KeystoreV3 } from "@tollgate/fetch";
import {
  budgetFor,
  createBudgetStore,
  formatUsdScaled,
  generateMandateKey,
  importMandateKey,
  issueOpenMandate,
  readStatusListFile,
  revokeInStatusListFile,
  verifyOpenMandate,
  type Frequency,
  type MandateKeyPair,
  type OpenMandateConstraints,
  type PublicMandateJwk,
} from "@tollgate/mandates";
import { parseBudget, budgetsPath } from "../budget-file.ts";
import { configDir } from "../dev-state.ts";
import { UsageError } from "../usage.ts";
import { hiddenPrompt } from "./wallet.ts";

export interface MandateOptions {
  action: "issue" | "show" | "revoke";
  /** show / revoke: the mandate id (or a mandate file). */
  id?: string;
  payees?: string[];
  /** Per-payment maximum in dollars ("$0.05"). */
  max?: string;
  /** "$0.20/day", "$5/week", "$20" (in total). */
  budget?: string;
  network?: string;
  /** ADDRESS[:decimals]; default: USDC of the network (counted as dollars). */
  asset?: string;
  /** "24h", "7d", "30m"; default 24h. */
  expires?: string;
  /** "DAILY", "WEEKLY:4", …: AP2 agent recurrence. */
  recurrence?: string;
  json?: boolean;
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  prompt?: (question: string) => Promise<string | undefined>;
  kdf?: CreateKeystoreOptions;
}

export interface StoredMandate {
  id: string;
  open: string;
  userPublicJwk: PublicMandateJwk;
  agentPublicJwk: PublicMandateJwk;
}

const PERIOD_SECONDS: Record<string, number | undefined> = { hour: 3600, day: 86_400, week: 7 * 86_400, month: 30 * 86_400, total: undefined };
const FREQUENCIES: readonly Frequency[] = ["ON_DEMAND", "DAILY", "WEEKLY", "BIWEEKLY", "MONTHLY", "QUARTERLY", "ANNUALLY"];

export const mandatesDir = (env: Record<string, string | undefined>) => join(configDir(env), "mandates");
export const statusListPath = (env: Record<string, string | undefined>) => join(mandatesDir(env), "status.json");

export async function mandate(options: MandateOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  switch (options.action) {
    case "issue":
      return issue(options, env, out);
    case "show":
      return show(options, env, out);
    case "revoke": {
      const m = readMandate(required(options.id, "revoke"), env);
      const added = await revokeInStatusListFile(statusListPath(env), m.id);
      out(added ? `revoked ${m.id} (status list ${statusListPath(env)})` : `${m.id} was already revoked`);
      return 0;
    }
  }
}

function required(id: string | undefined, action: string): string {
  if (!id) throw new UsageError(`mandate ${action}: give the mandate id`);
  return id;
}

async function issue(o: MandateOptions, env: Record<string, string | undefined>, out: (l: string) => void): Promise<number> {
  if (!o.payees?.length) throw new UsageError("mandate issue: --payee ADDRESS (or ERC-8004 agent id) is required, once per allowed payee");
  if (!o.network) throw new UsageError("mandate issue: --network CAIP-2 is required (e.g. eip155:8453)");
  const asset = parseAsset(o.asset, o.network);
  const constraints: OpenMandateConstraints = {
    allowedPayees: o.payees,
    allowedAssets: [{ network: o.network, asset: asset.address, ...(asset.decimals !== undefined ? { usdDecimals: asset.decimals } : {}) }],
  };
  if (o.max) constraints.amountRange = { currency: "USD", max: dollars(o.max, "--max") };
  if (o.budget) {
    const spec = parseBudget(o.budget);
    const periodSeconds = PERIOD_SECONDS[spec.period];
    constraints.budget = { currency: "USD", max: dollars(o.budget.split("/")[0]!, "--budget"), ...(periodSeconds ? { periodSeconds } : {}) };
  }
  if (o.recurrence) {
    const [f, n] = o.recurrence.toUpperCase().split(":");
    if (!FREQUENCIES.includes(f as Frequency) || (n !== undefined && !/^[1-9][0-9]*$/.test(n))) throw new UsageError(`--recurrence: expected one of ${FREQUENCIES.join(", ")} with an optional :COUNT, got ${JSON.stringify(o.recurrence)}`);
    constraints.recurrence = { frequency: f as Frequency, ...(n ? { maxOccurrences: Number(n) } : {}) };
  }
  if ((asset.decimals === undefined) && (o.max || o.budget)) throw new UsageError("--max and --budget are in dollars: give the asset's decimals (--asset ADDRESS:DECIMALS) so it counts as dollars");
  const expiresAt = Math.floor(Date.now() / 1000) + duration(o.expires ?? "24h");
  const prompt = o.prompt ?? hiddenPrompt;
  const user = await loadOrCreateKey(join(configDir(env), "mandate-user.json"), env, prompt, o.kdf);
  const agent = await loadOrCreateKey(join(configDir(env), "mandate-agent.json"), env, prompt, o.kdf);
  const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints, expiresAt });
  const v = await verifyOpenMandate(open, { userPublicJwk: user.publicJwk });
  if (!v.ok) throw new Error(`the issued mandate does not verify: ${v.reason}`);
  const stored: StoredMandate = { id: v.mandate.jti, open, userPublicJwk: user.publicJwk, agentPublicJwk: agent.publicJwk };
  const file = join(mandatesDir(env), `${stored.id}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(stored, null, 2) + "\n", { mode: 0o600 });
  if (o.json) out(JSON.stringify({ id: stored.id, file, expiresAt, constraints: v.mandate.constraints }));
  else {
    out(`issued mandate ${stored.id}`);
    out(`  file      ${file}`);
    out(`  expires   ${new Date(expiresAt * 1000).toISOString()}`);
    out(`  use it    tollgate pay <url> --mandate ${stored.id}`);
  }
  return 0;
}

async function show(o: MandateOptions, env: Record<string, string | undefined>, out: (l: string) => void): Promise<number> {
  const m = readMandate(required(o.id, "show"), env);
  const now = Math.floor(Date.now() / 1000);
  let v = await verifyOpenMandate(m.open, { userPublicJwk: m.userPublicJwk, now });
  // An expired mandate is still shown (as expired): verified as of its last valid second.
  if (!v.ok && v.code === "expired") v = await verifyOpenMandate(m.open, { userPublicJwk: m.userPublicJwk, now: claimedExpiry(m.open) - 1 });
  if (!v.ok) throw new Error(`mandate ${m.id} does not verify: ${v.field}: ${v.reason}`);
  const revoked = (await readStatusListFile(statusListPath(env))).revoked.includes(m.id);
  const status = revoked ? "revoked" : now >= v.mandate.exp ? "expired" : "active";
  // What the shared budget store counts under this mandate in the current period.
  const store = createBudgetStore({ file: budgetsPath(env) });
  const budget = v.mandate.constraints.find((c) => c.type === "payment.budget");
  const instrument = v.mandate.constraints.flatMap((c) => (c.type === "payment.allowed_payment_instruments" ? c.allowed : []))[0];
  let spent: string | undefined;
  if (budget && instrument?.asset && instrument.network) {
    const b = budgetFor(v.mandate, { payTo: "", amount: "0", asset: instrument.asset, network: instrument.network, at: now });
    if (b && "periodStart" in b) spent = formatUsdScaled((await store.spent(m.id, b.periodStart)).amount);
  }
  const view = { id: m.id, status, issuedAt: v.mandate.iat, expiresAt: v.mandate.exp, agentKey: m.agentPublicJwk.kid, constraints: v.mandate.constraints, ...(spent !== undefined ? { spentThisPeriodUsd: spent } : {}) };
  if (o.json) out(JSON.stringify(view));
  else {
    out(`mandate ${m.id} (${status})`);
    out(`  expires   ${new Date(v.mandate.exp * 1000).toISOString()}`);
    out(`  agent key ${m.agentPublicJwk.kid ?? "?"}`);
    for (const c of v.mandate.constraints) out(`  ${c.type.padEnd(38)} ${JSON.stringify({ ...c, type: undefined })}`);
    if (spent !== undefined) out(`  spent this period: $${spent}`);
  }
  return 0;
}

function claimedExpiry(open: string): number {
  try {
    const exp = (JSON.parse(Buffer.from(open.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp : 0;
  } catch {
    return 0;
  }
}

/** A stored mandate by id or by file path. */
export function readMandate(idOrFile: string, env: Record<string, string | undefined>): StoredMandate {
  const file = existsSync(idOrFile) ? idOrFile : join(mandatesDir(env), `${idOrFile.replace(/[^A-Za-z0-9_-]/g, "")}.json`);
  if (!existsSync(file)) throw new UsageError(`no mandate ${JSON.stringify(idOrFile)} (looked in ${mandatesDir(env)})`);
  const m = JSON.parse(readFileSync(file, "utf8")) as StoredMandate;
  if (typeof m.open !== "string" || typeof m.id !== "string") throw new Error(`${file} is not a mandate file`);
  return m;
}

/** The agent key `tollgate pay --mandate` signs closed mandates with. */
export async function loadAgentKey(env: Record<string, string | undefined>, prompt = hiddenPrompt): Promise<MandateKeyPair> {
  const file = join(configDir(env), "mandate-agent.json");
  if (!existsSync(file)) throw new UsageError(`no agent mandate key at ${file}: issue a mandate first (tollgate mandate issue)`);
  return loadOrCreateKey(file, env, prompt);
}

type SealedKey = KeystoreV3 & { tollgate: { kind: "mandate-es256"; publicJwk: PublicMandateJwk } };

async function loadOrCreateKey(file: string, env: Record<string, string | undefined>, prompt: (q: string) => Promise<string | undefined>, kdf?: CreateKeystoreOptions): Promise<MandateKeyPair> {
  const password = env.TOLLGATE_KEYSTORE_PASSWORD ?? (await prompt(`password for ${file} (hidden): `));
  if (password === undefined) throw new UsageError(`${file}: set TOLLGATE_KEYSTORE_PASSWORD or run in a terminal`);
  if (existsSync(file)) {
    const sealed = JSON.parse(readFileSync(file, "utf8")) as SealedKey;
    if (sealed.tollgate?.kind !== "mandate-es256") throw new Error(`${file} is not a mandate key`);
    const d = Buffer.from((await decryptKeystore(sealed, password)).slice(2), "hex").toString("base64url");
    return importMandateKey({ ...sealed.tollgate.publicJwk, d });
  }
  if (password.length < 8) throw new UsageError("TOLLGATE_KEYSTORE_PASSWORD: use at least 8 characters");
  const key = await generateMandateKey();
  const sealed: SealedKey = { ...(await createKeystore(`0x${Buffer.from(key.privateJwk.d, "base64url").toString("hex")}`, password, kdf)), tollgate: { kind: "mandate-es256", publicJwk: key.publicJwk } };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(sealed, null, 2) + "\n", { mode: 0o600 });
  return key;
}

function dollars(text: string, flag: string): string {
  const m = /^\s*\$?\s*([0-9]+(?:\.[0-9]+)?)\s*$/.exec(text);
  if (!m) throw new UsageError(`${flag}: expected dollars, e.g. "$0.05", got ${JSON.stringify(text)}`);
  return m[1]!;
}

function duration(text: string): number {
  const m = /^([1-9][0-9]*)(m|h|d)$/.exec(text);
  if (!m) throw new UsageError(`--expires: expected e.g. 30m, 24h or 7d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * { m: 60, h: 3600, d: 86_400 }[m[2] as "m" | "h" | "d"];
}

function parseAsset(spec: string | undefined, network: string): { address: string; decimals?: number } {
  if (!spec) {
    const usdc = findUsdc(network);
    if (!usdc) throw new UsageError(`--asset: no known USDC on ${network}; give --asset ADDRESS:DECIMALS`);
    return { address: usdc.address, decimals: usdc.decimals };
  }
  const m = /^([^:]+)(?::([0-9]{1,2}))?$/.exec(spec);
  if (!m) throw new UsageError(`--asset: expected ADDRESS or ADDRESS:DECIMALS, got ${JSON.stringify(spec)}`);
  return { address: m[1]!, ...(m[2] !== undefined ? { decimals: Number(m[2]) } : {}) };
}
