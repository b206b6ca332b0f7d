/**
 * Holding a channel for one request (spec: "processes one request per channel at a time"): the
 * paywall's in-process lock, plus the store's lease when the store is shared by several server
 * instances (ChannelStore.leases). While held, every write of the channel's record goes through
 * `write`: with a lease, only while the lease still holds (false: it ran out, another instance
 * may hold the channel now, nothing was written), so a request that outlived its lease can never
 * overwrite what another instance committed.
 */
import { randomUUID } from "node:crypto";
import type { InFlight } from "../inflight.ts";
import type { ChannelRecord, ChannelStore } from "./store.ts";

export interface ChannelHold {
  /** Writes the record while the channel is held; `release`: and gives the channel back with it. */
  write(record: ChannelRecord, options?: { release?: boolean }): Promise<boolean>;
  /** Gives the channel back (once; later calls do nothing). */
  release(): Promise<void>;
}

/** Holds the channel, or undefined when another request (here or on another instance) holds it. */
export async function holdChannel(inflight: InFlight, store: ChannelStore, channelId: string, ttlMs: number, onError: (e: unknown) => void): Promise<ChannelHold | undefined> {
  const local = inflight.acquire(`batch-settlement|${channelId}`);
  if (!local) return undefined;
  const leases = store.leases;
  if (!leases) {
    return {
      write: async (record, options) => {
        await store.put(record);
        if (options?.release) local();
        return true;
      },
      release: async () => local(),
    };
  }
  const owner = randomUUID();
  let taken: boolean;
  try {
    taken = await leases.take(channelId, owner, ttlMs);
  } catch (e) {
    local();
    throw e;
  }
  if (!taken) {
    local();
    return undefined;
  }
  let held = true;
  const giveBack = () => {
    held = false;
    local();
  };
  return {
    async write(record, options) {
      const release = options?.release === true;
      const written = await leases.commit(record, owner, release);
      if (release || !written) giveBack();
      return written;
    },
    async release() {
      if (!held) return;
      held = false;
      try {
        await leases.release(channelId, owner);
      } catch (e) {
        onError(e); // the lease runs out by itself
      } finally {
        local();
      }
    },
  };
}
