/**
 * A resource server over many facilitators: one `FacilitatorClient` that sends each payment to a
 * facilitator supporting its kind (from each one's `/supported`, refreshed), prefers healthy,
 * fast and reputable ones, and survives one failing.
 *
 * `/verify` moves nothing, so it fails over freely: connection errors, timeouts, 5xx, any error.
 *
 * `/settle` is where money moves, and a facilitator that did not answer may be settling right
 * now. So a payload sent to one facilitator stays with it (the paywall's settle loop asks it
 * again until it answers or the deadline passes) and is sent to another only when
 *   - the first refused the request without processing it (a 4xx transport answer), or
 *   - the first stopped answering (its breaker opened, or `settleAttempts` failed) AND
 *     `proveUnused` shows from the chain that the authorization was never used.
 * When the first stopped answering after its transaction landed, `proveSettled` reads the
 * settlement from the chain, so the payment is served rather than lost.
 * Without that proof the settlement stays "unknown": never two facilitators racing one payment
 * as fresh settlements, never a resource served without its charge.
 */
import { FacilitatorError, httpFacilitatorClient, type FacilitatorCallOptions, type FacilitatorClient, type PaymentPayload, type PaymentRequirements, type SettleResponse, type SupportedResponse, type VerifyResponse } from "@tollgate/core";
import { payloadHash } from "../inflight.ts";
import { admits, DEFAULT_BREAKER, newHealth, recordFailure, recordSuccess, trialDue, type BreakerSettings, type Health } from "./breaker.ts";

export interface FacilitatorEntry {
  /** A base URL, or any FacilitatorClient. */
  facilitator: FacilitatorClient | string;
  /** For status and events. Default: the URL, or "facilitator <n>". */
  name?: string;
  /** Preferred over lower values among healthy facilitators (e.g. an ERC-8004 reputation summary, 0-100). */
  reputation?: number;
}

export interface FacilitatorPoolOptions {
  facilitators: ReadonlyArray<FacilitatorEntry | FacilitatorClient | string>;
  breaker?: Partial<BreakerSettings>;
  /** How long each facilitator's `/supported` is reused. Default 60 000. */
  supportedTtlMs?: number;
  /** Failed `/settle` calls of one payload at one facilitator before it may be moved (with proof). Default 3. */
  settleAttempts?: number;
  /**
   * True only when the chain shows the payment's authorization was never used (e.g. EIP-3009
   * `authorizationState` false): the condition for moving a settlement to another facilitator.
   */
  proveUnused?: (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<boolean>;
  /**
   * The settlement as the chain shows it, when the facilitator that was settling it went silent
   * after sending (e.g. EIP-3009: the authorization used in a transaction that paid `payTo` the
   * amount): answered as its success, so a payment that landed is served, not lost.
   */
  proveSettled?: (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<SettleResponse | undefined>;
  /** Failovers, opened breakers, moved settlements (for logs and metrics). Must not throw. */
  onEvent?: (event: PoolEvent) => void;
  now?: () => number;
}

export type PoolEvent =
  | { kind: "failover"; endpoint: "verify" | "settle" | "supported"; from: string; error: string }
  | { kind: "breaker-open"; facilitator: string; error: string }
  | { kind: "settle-moved"; from: string; to: string }
  /** The facilitator went silent, and the chain shows the payment settled: answered from the chain. */
  | { kind: "settled-on-chain"; facilitator: string; transaction: string }
  /** A settlement succeeded at this facilitator (e.g. to leave it feedback with the transaction as proof). */
  | { kind: "settled"; facilitator: string; ms: number; transaction: string; payer: string | undefined };

export interface FacilitatorStatus {
  name: string;
  state: Health["state"];
  latencyMs: number | undefined;
  calls: number;
  failures: number;
  lastError: string | undefined;
  reputation: number | undefined;
  /** "x402Version|scheme|network" it settles, as last seen. */
  kinds: string[];
}

export interface FacilitatorPool extends FacilitatorClient {
  status(): FacilitatorStatus[];
}

interface Member {
  name: string;
  client: FacilitatorClient;
  reputation: number | undefined;
  health: Health;
  supported?: { at: number; value: SupportedResponse };
}

/** Which member a payload was sent to for settlement, and how often it failed to answer. */
interface Sent {
  member: Member;
  failures: number;
  at: number;
}

const MAX_TRACKED = 10_000;
const TRACK_MS = 15 * 60 * 1000;

export function facilitatorPool(options: FacilitatorPoolOptions): FacilitatorPool {
  if (!Array.isArray(options.facilitators) || options.facilitators.length === 0) throw new TypeError("facilitatorPool: facilitators must list at least one facilitator");
  const members = options.facilitators.map(memberOf);
  const breaker = { ...DEFAULT_BREAKER, ...options.breaker };
  const ttl = options.supportedTtlMs ?? 60_000;
  const attempts = options.settleAttempts ?? 3;
  const now = options.now ?? Date.now;
  const emit = (e: PoolEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      // an event hook must not decide a payment
    }
  };
  const verifiedBy = new Map<string, { member: Member; at: number }>();
  const sentTo = new Map<string, Sent>();

  function fail(m: Member, e: unknown): void {
    const wasOpen = m.health.state === "open";
    recordFailure(m.health, breaker, now(), describe(e));
    if (!wasOpen && m.health.state === "open") emit({ kind: "breaker-open", facilitator: m.name, error: describe(e) });
  }

  async function timed<T>(m: Member, call: () => Promise<T>, measured = true): Promise<T> {
    const started = performance.now();
    const value = await call();
    recordSuccess(m.health, measured ? performance.now() - started : undefined);
    return value;
  }

  async function supportedOf(m: Member, force = false): Promise<SupportedResponse | undefined> {
    if (!force && m.supported && now() - m.supported.at < ttl) return m.supported.value;
    if (!admits(m.health, now())) return m.supported?.value;
    try {
      const value = await timed(m, () => m.client.supported(), false);
      m.supported = { at: now(), value };
      return value;
    } catch (e) {
      fail(m, e);
      emit({ kind: "failover", endpoint: "supported", from: m.name, error: describe(e) });
      return m.supported?.value; // what it said last is still the best guess of what it settles
    }
  }

  /** Members that settle this kind and may be called now, best first: healthy, reputable, fast. */
  async function candidates(requirements: PaymentRequirements, options?: FacilitatorCallOptions): Promise<Member[]> {
    const version = options?.v1 ? 1 : 2;
    const network = options?.v1 ? options.v1.network : requirements.network;
    const able: Member[] = [];
    for (const m of members) {
      const s = await supportedOf(m);
      if (s?.kinds.some((k) => k.x402Version === version && k.scheme === requirements.scheme && k.network === network)) able.push(m);
    }
    const t = now();
    return able.filter((m) => m.health.state !== "open" || trialDue(m.health, t)).sort((a, b) => preference(a, b, t));
  }

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements, callOptions?: FacilitatorCallOptions): Promise<VerifyResponse> {
    const list = await candidates(requirements, callOptions);
    let last: unknown = noFacilitator(requirements, "verify");
    for (const m of list) {
      if (!admits(m.health, now())) continue;
      try {
        const answer = await timed(m, () => m.client.verify(payload, requirements, callOptions));
        remember(verifiedBy, payloadHash(payload), { member: m, at: now() });
        return answer;
      } catch (e) {
        fail(m, e);
        emit({ kind: "failover", endpoint: "verify", from: m.name, error: describe(e) });
        last = e;
      }
    }
    throw last;
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements, callOptions?: FacilitatorCallOptions): Promise<SettleResponse> {
    const key = payloadHash(payload);
    const sent = sentTo.get(key);
    if (sent) return settleAt(sent, payload, requirements, callOptions, key);
    const list = await candidates(requirements, callOptions);
    const preferred = verifiedBy.get(key)?.member;
    const ordered = preferred && list.includes(preferred) ? [preferred, ...list.filter((m) => m !== preferred)] : list;
    const first = ordered.find((m) => admits(m.health, now()));
    if (!first) throw noFacilitator(requirements, "settle");
    const record: Sent = { member: first, failures: 0, at: now() };
    remember(sentTo, key, record);
    return settleAt(record, payload, requirements, callOptions, key);
  }

  /** One `/settle` at the member holding this payload; moved elsewhere only by the rules above. */
  async function settleAt(sent: Sent, payload: PaymentPayload, requirements: PaymentRequirements, callOptions: FacilitatorCallOptions | undefined, key: string, tried = new Set<Member>()): Promise<SettleResponse> {
    const m = sent.member;
    tried.add(m);
    try {
      const started = performance.now();
      const answer = await timed(m, () => m.client.settle(payload, requirements, callOptions));
      if (answer.success || !isStillPending(answer)) sentTo.delete(key);
      if (answer.success) emit({ kind: "settled", facilitator: m.name, ms: Math.round(performance.now() - started), transaction: answer.transaction, payer: answer.payer });
      return answer;
    } catch (e) {
      fail(m, e);
      sent.failures++;
      const next = async () => (await candidates(requirements, callOptions)).find((c) => !tried.has(c) && admits(c.health, now()));
      if (notProcessed(e)) {
        // Refused before reading it (401, 404, 413, 429…): nothing can be settling there.
        const other = await next();
        if (!other) throw e;
        emit({ kind: "failover", endpoint: "settle", from: m.name, error: describe(e) });
        sent.member = other;
        sent.failures = 0;
        return settleAt(sent, payload, requirements, callOptions, key, tried);
      }
      const gaveUp = m.health.state === "open" || sent.failures >= attempts;
      const onChain = gaveUp && options.proveSettled ? await provenSettled(options.proveSettled, payload, requirements) : undefined;
      if (onChain) {
        sentTo.delete(key);
        emit({ kind: "settled-on-chain", facilitator: m.name, transaction: onChain.transaction });
        return onChain;
      }
      if (gaveUp && options.proveUnused && (await provenUnused(options.proveUnused, payload, requirements))) {
        const other = await next();
        if (other) {
          emit({ kind: "settle-moved", from: m.name, to: other.name });
          sent.member = other;
          sent.failures = 0;
          return settleAt(sent, payload, requirements, callOptions, key, tried);
        }
      }
      throw e; // unknown: the paywall's settle loop asks again (here, the same facilitator)
    }
  }

  async function supported(): Promise<SupportedResponse> {
    const all = await Promise.all(members.map((m) => supportedOf(m)));
    const seen = new Set<string>();
    const out: SupportedResponse = { kinds: [], extensions: [], signers: {} };
    for (const s of all) {
      if (!s) continue;
      for (const k of s.kinds) {
        const id = `${k.x402Version}|${k.scheme}|${k.network}`;
        if (!seen.has(id)) (seen.add(id), out.kinds.push(k));
      }
      for (const e of s.extensions) if (!out.extensions.includes(e)) out.extensions.push(e);
      for (const [family, addresses] of Object.entries(s.signers ?? {})) out.signers[family] = [...new Set([...(out.signers[family] ?? []), ...addresses])];
    }
    if (out.kinds.length === 0) throw new FacilitatorError("no facilitator of the pool answered /supported", "supported", undefined, "");
    return out;
  }

  function status(): FacilitatorStatus[] {
    return members.map((m) => ({
      name: m.name,
      state: m.health.state,
      latencyMs: m.health.latencyMs === undefined ? undefined : Math.round(m.health.latencyMs),
      calls: m.health.calls,
      failures: m.health.failuresTotal,
      lastError: m.health.lastError,
      reputation: m.reputation,
      kinds: (m.supported?.value.kinds ?? []).map((k) => `${k.x402Version}|${k.scheme}|${k.network}`),
    }));
  }

  function remember<T extends { at: number }>(map: Map<string, T>, key: string, value: T): void {
    if (map.size >= MAX_TRACKED) {
      const cutoff = now() - TRACK_MS;
      for (const [k, v] of map) if (v.at < cutoff || map.size >= MAX_TRACKED) map.delete(k);
    }
    map.set(key, value);
  }

  return { verify, settle, supported, status };
}

function memberOf(entry: FacilitatorEntry | FacilitatorClient | string, i: number): Member {
  const e: FacilitatorEntry = typeof entry === "string" || !("facilitator" in entry) ? { facilitator: entry } : entry;
  const client = typeof e.facilitator === "string" ? httpFacilitatorClient({ url: e.facilitator }) : e.facilitator;
  const name = e.name ?? (typeof e.facilitator === "string" ? e.facilitator : `facilitator ${i + 1}`);
  return { name, client, reputation: e.reputation, health: newHealth() };
}

/**
 * Callable first (closed, or open with its trial due: a recovered facilitator must get a call to
 * close again), a trial in flight last; then higher reputation; then lower latency (unknown
 * counts as fast, so a new facilitator gets tried).
 */
function preference(a: Member, b: Member, now: number): number {
  const rank = (m: Member) => (m.health.state === "closed" || trialDue(m.health, now) ? 0 : 1);
  return rank(a) - rank(b) || (b.reputation ?? 0) - (a.reputation ?? 0) || (a.health.latencyMs ?? 0) - (b.health.latencyMs ?? 0);
}

/** A 4xx transport answer: the facilitator refused the request before processing it. */
function notProcessed(e: unknown): boolean {
  return e instanceof FacilitatorError && e.status !== undefined && e.status >= 400 && e.status < 500;
}

function isStillPending(answer: SettleResponse): boolean {
  const ext = answer.extensions?.["tollgate-settlement"] as { status?: unknown } | undefined;
  return answer.errorReason === "settlement_pending" || ext?.status === "pending";
}

async function provenUnused(prove: NonNullable<FacilitatorPoolOptions["proveUnused"]>, payload: PaymentPayload, requirements: PaymentRequirements): Promise<boolean> {
  try {
    return (await prove(payload, requirements)) === true;
  } catch {
    return false; // no proof is no proof
  }
}

async function provenSettled(prove: NonNullable<FacilitatorPoolOptions["proveSettled"]>, payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse | undefined> {
  try {
    const r = await prove(payload, requirements);
    return r?.success && r.transaction ? r : undefined;
  } catch {
    return undefined;
  }
}

function noFacilitator(requirements: PaymentRequirements, endpoint: "verify" | "settle"): FacilitatorError {
  return new FacilitatorError(`no facilitator of the pool can ${endpoint} ${requirements.scheme} on ${requirements.network} now`, endpoint, undefined, "");
}

function describe(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).slice(0, 300);
}
