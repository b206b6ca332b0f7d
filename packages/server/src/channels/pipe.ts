/**
 * The bridge between the paywall pipeline and the channel branch: the pipeline calls
 * `admitChannelPayment` for an offer whose scheme has a channel face, and nothing else of the
 * pipeline changes for channels.
 */
import type { ResourceInfo } from "@tollgate/core";
import type { DecodedPayment, Offer } from "../payment.ts";
import { EXPOSED_HEADERS, paymentRequired, type Page, type Pipeline, type Settings } from "../pipeline.ts";
import type { Decision } from "../types.ts";
import { admitChannel, type ChannelPipe } from "./admit.ts";
import { memoryChannelStore, type ChannelStore } from "./store.ts";

/** Default: a snapshot older than a minute sends the voucher to the facilitator's /verify. */
const DEFAULT_MAX_SNAPSHOT_AGE_MS = 60_000;
const defaults = new WeakMap<Settings, ChannelStore>();

/** The store a paywall keeps channels in: the configured one, else one in memory per paywall. */
export function channelStoreOf(settings: Settings): ChannelStore {
  if (settings.channels?.store) return settings.channels.store;
  let store = defaults.get(settings);
  if (!store) defaults.set(settings, (store = memoryChannelStore()));
  return store;
}

export function admitChannelPayment(p: Pipeline, page: Page, decoded: DecodedPayment): Promise<Decision> {
  const { settings } = p;
  const offer = decoded.offer;
  const pipe: ChannelPipe = {
    settings,
    inflight: p.inflight,
    store: channelStoreOf(settings),
    maxSnapshotAgeMs: settings.channels?.maxSnapshotAgeMs ?? DEFAULT_MAX_SNAPSHOT_AGE_MS,
    maxResponseBytes: page.route.maxResponseBytes ?? settings.maxResponseBytes,
    route: page.route.key,
    ...(page.route.metered ? { metered: page.route.metered } : {}),
    call: offer.facilitatorV1Network ? { v1: { network: offer.facilitatorV1Network, resource: page.resource as ResourceInfo } } : undefined,
    exposedHeaders: EXPOSED_HEADERS,
    paymentRequired(error, corrective, headers) {
      const offers = corrective ? page.offers.map((o) => (o === corrective.offer ? withExtra(o, corrective.extra) : o)) : page.offers;
      return paymentRequired(settings, { ...page, offers }, error, headers);
    },
  };
  return admitChannel(pipe, decoded);
}

function withExtra(o: Offer, extra: Record<string, unknown>): Offer {
  return { ...o, requirements: { ...o.requirements, extra: { ...(o.requirements.extra ?? {}), ...extra } } };
}
