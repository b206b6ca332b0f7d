/**
 * `erc20ApprovalGasSponsoring` in the facilitator service: the library face
 * (packages/evm exact/facilitator/erc20-approval-sponsor.ts) over the service's ledger
 * (migration 8, `sponsored_approvals`), wrapped around the Permit2 schemes (exact and upto) when
 * `gasSponsoring` is configured. Only then is the extension listed in /supported; without it a payer lacking the
 * Permit2 allowance gets `permit2_allowance_required` (HTTP 412 at a paywall).
 *
 * The per-payer bounds are decided in one transaction under an advisory lock per payer, so
 * several processes sharing PostgreSQL agree. The sponsor key must be its own (not one of
 * `privateKeys`, nor the batch-settlement relayer): sends are serialized per key in this process,
 * and across processes the key is leased (leased-key.ts): only its holder funds and recovers; the
 * others answer a settlement that needs funding with `erc20_approval_sponsor_unavailable`.
 */
import type { Network, SchemeFacilitator } from "@tollgate/core";
import {
  memorySponsorStore,
  recoverSponsoredApprovals,
  rpcTransportForUrl,
  withErc20ApprovalSponsoring,
  type ApprovalSponsorOptions,
  type SponsorStore,
  type SponsoredApproval,
} from "@tollgate/evm";
import { createPublicClient, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { FacilitatorConfig } from "../config.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Logger } from "../logger.ts";
import { leasedKey, onePassAtATime, recoveredUnderLease, type LeasedKey } from "./leased-key.ts";

type Row = { key: string; network: string; payer: string; funding: string; approve_hash: string; approve_raw: string; approve_nonce: string | number; funding_hash: string | null; funding_raw: string | null; status: string; reason: string | null; created_at?: string | Date };

const fromRow = (r: Row): SponsoredApproval => ({
  key: r.key,
  network: r.network as Network,
  payer: r.payer as Address,
  funding: BigInt(r.funding),
  approveHash: r.approve_hash as Hex,
  approveRaw: r.approve_raw as Hex,
  approveNonce: Number(r.approve_nonce),
  ...(r.funding_hash ? { fundingHash: r.funding_hash as Hex } : {}),
  ...(r.funding_raw ? { fundingRaw: r.funding_raw as Hex } : {}),
  status: r.status as SponsoredApproval["status"],
  ...(r.reason ? { reason: r.reason } : {}),
  ...(r.created_at ? { createdAt: new Date(r.created_at).getTime() } : {}),
});

/** The store over the ledger's SQL (PGlite or PostgreSQL, same statements). */
export function ledgerSponsorStore(ledger: Ledger): SponsorStore {
  const { sql, schema: s } = ledger;
  const COLUMNS = "key, network, payer, funding, approve_hash, approve_raw, approve_nonce, funding_hash, funding_raw, status, reason";
  return {
    begin(row, limits) {
      return sql.transaction(async (tx) => {
        const payer = row.payer.toLowerCase();
        await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`tollgate-sponsor:${s}:${row.network}:${payer}`]);
        const existing = await tx.query<Row>(`SELECT ${COLUMNS} FROM ${s}.sponsored_approvals WHERE key = $1`, [row.key]);
        if (existing[0]) return { ok: false as const, existing: fromRow(existing[0]) };
        if (row.funding > 0n) {
          const [c] = await tx.query<{ outstanding: string | number; recent: string | number }>(
            `SELECT count(*) FILTER (WHERE status IN ('intent', 'funded')) AS outstanding,
                    count(*) FILTER (WHERE created_at > now() - ($3::bigint * interval '1 millisecond')) AS recent
               FROM ${s}.sponsored_approvals WHERE network = $1 AND payer = $2 AND funding > 0`,
            [row.network, payer, limits.perPayerWindowMs],
          );
          if (Number(c?.outstanding ?? 0) > 0) return { ok: false as const, refused: "outstanding" as const };
          if (Number(c?.recent ?? 0) >= limits.perPayerMax) return { ok: false as const, refused: "limit" as const };
        }
        await tx.query(
          `INSERT INTO ${s}.sponsored_approvals (key, network, payer, funding, approve_hash, approve_raw, approve_nonce, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'intent')`,
          [row.key, row.network, payer, row.funding.toString(), row.approveHash, row.approveRaw, row.approveNonce],
        );
        return { ok: true as const };
      });
    },
    async update(key, change) {
      await sql.query(
        `UPDATE ${s}.sponsored_approvals SET status = COALESCE($2, status), reason = COALESCE($3, reason), funding_hash = COALESCE($4, funding_hash), funding_raw = COALESCE($5, funding_raw), updated_at = now() WHERE key = $1`,
        [key, change.status ?? null, change.reason ?? null, change.fundingHash ?? null, change.fundingRaw ?? null],
      );
    },
    async open(network) {
      const rows = await sql.query<Row>(`SELECT ${COLUMNS}, created_at FROM ${s}.sponsored_approvals WHERE network = $1 AND status IN ('intent', 'funded') ORDER BY created_at`, [network]);
      return rows.map(fromRow);
    },
  };
}

export interface ApprovalSponsorService {
  /** Wraps the exact scheme: verify judges the signed approve, settle funds, approves, settles. */
  wrap(scheme: SchemeFacilitator): SchemeFacilitator;
  /** Finishes sponsored approvals a previous run left open, then looks again every 15 s. */
  start(): Promise<void>;
  /** Stops looking and frees the sponsor's lease. */
  close(): Promise<void>;
  /** The sponsor key's lease (tests, operators). */
  sponsor: LeasedKey;
}

const RECOVER_EVERY_MS = 15_000;

/** The service, or undefined when `gasSponsoring` is not configured (the extension is then not listed). */
export function createApprovalSponsorService(config: FacilitatorConfig, ledger: Ledger | undefined, logger: Logger): ApprovalSponsorService | undefined {
  const gs = config.gasSponsoring;
  if (!gs || config.networks.length === 0) return undefined;
  const key = gs.sponsorKey.toLowerCase();
  // Two nonce managers on one key would collide.
  if (config.privateKeys.some((k) => k.toLowerCase() === key)) throw new Error("gasSponsoring.sponsorKey: must not be one of privateKeys (the exact engine manages their nonces)");
  if (config.batchSettlement?.relayerKey.toLowerCase() === key) throw new Error("gasSponsoring.sponsorKey: must not be batchSettlement.relayerKey");
  const sponsor = leasedKey({
    ledger,
    group: "gas-sponsor",
    role: "the gas sponsor",
    account: privateKeyToAccount(gs.sponsorKey as Hex),
    networks: config.networks.map((n) => n.network),
    ttlMs: config.signerLeaseMs,
    logger,
    onChange: () => void look(),
  });
  const store = ledger ? ledgerSponsorStore(ledger) : memorySponsorStore();
  const opts: ApprovalSponsorOptions = {
    // The lease is checked by canSend (a refusal leaves the row open); the plain account signs.
    sponsor: privateKeyToAccount(gs.sponsorKey as Hex),
    canSend: (network) => sponsor.holds(network),
    networks: config.networks.map((n) => ({
      network: n.network as Network,
      chainId: Number(n.network.split(":")[1]),
      client: createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl, { batch: true }), pollingInterval: 250 }) as PublicClient,
    })),
    policy: { maxGas: BigInt(gs.maxGas), maxFeePerGas: BigInt(gs.maxFeePerGasWei), maxFunding: BigInt(gs.maxFundingWei) },
    limits: { perPayerMax: gs.perPayerPerHour, perPayerWindowMs: 3_600_000 },
    store,
    receiptTimeoutMs: gs.receiptTimeoutMs,
  };
  // Recovery finishes only the rows of networks whose sponsor lease this process holds.
  const recovery: ApprovalSponsorOptions = { ...opts, store: { ...store, open: async (network) => (sponsor.holds(network) ? store.open(network) : []) } };
  let timer: NodeJS.Timeout | undefined;
  const look = onePassAtATime(async () => {
    try {
      const closed = await recoverSponsoredApprovals(recovery);
      if (closed > 0) logger.info({ closed }, "gas sponsoring: finished sponsored approvals left open");
    } catch (e) {
      logger.warn({ err: e instanceof Error ? e.message.split("\n")[0] : "error" }, "gas sponsoring: could not look at open sponsored approvals");
    }
  });
  const recovered = recoveredUnderLease(sponsor, look);
  return {
    wrap: (scheme) => recoveredBeforeSettle(withErc20ApprovalSponsoring(scheme, opts), sponsor, recovered),
    sponsor,
    async start() {
      await sponsor.leases.start();
      await look();
      timer = setInterval(() => void look(), RECOVER_EVERY_MS);
      timer.unref();
    },
    async close() {
      if (timer) clearInterval(timer);
      await sponsor.leases.close();
    },
  };
}

/**
 * The first /settle after the sponsor lease was taken waits for one recovery pass (see
 * leased-key.ts recoveredUnderLease): a funding the last holder wrote ahead keeps its nonce.
 * Only where this process holds the lease: elsewhere the wrapper refuses on its own (canSend).
 */
function recoveredBeforeSettle(scheme: SchemeFacilitator, sponsor: LeasedKey, recovered: (network: string) => Promise<void>): SchemeFacilitator {
  return {
    ...scheme,
    async settle(payload, requirements, caller) {
      if (sponsor.holds(requirements.network)) await recovered(requirements.network);
      return scheme.settle(payload, requirements, caller);
    },
  };
}
