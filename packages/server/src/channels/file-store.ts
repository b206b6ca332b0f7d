/**
 * A channel store in a directory, one JSON file per channel, that survives restarts and crashes:
 * each write goes to a temporary file that is synced, then renamed over the record (atomic on
 * POSIX), then the directory is synced. A crash leaves either the old record or the new one,
 * never half of one. One process per directory: its channel leases (one request per channel at
 * a time, writes of a channel one at a time) live in that process, not across processes; several
 * instances share sqlChannelStore instead.
 */
import { mkdirSync } from "node:fs";
import { open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { localLeases, type ChannelRecord, type ChannelStore } from "./store.ts";

const ID = /^0x[0-9a-f]{64}$/;

export function fileChannelStore(dir: string): ChannelStore {
  mkdirSync(dir, { recursive: true });
  const pathOf = (id: string) => {
    const key = id.toLowerCase();
    // Ids come from payloads: only a well-formed one may name a file.
    if (!ID.test(key)) throw new Error(`channel store: not a channel id: ${JSON.stringify(id.slice(0, 80))}`);
    return join(dir, `${key}.json`);
  };

  async function syncDir(): Promise<void> {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } catch {
      // some file systems refuse fsync on a directory; the rename is still atomic
    } finally {
      await handle.close();
    }
  }

  async function put(record: ChannelRecord): Promise<void> {
    const path = pathOf(record.channelId);
    const tmp = `${path}.${process.pid}.tmp`;
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await syncDir();
  }

  return {
    // One process per directory: its leases live in that process.
    leases: localLeases(put),
    put,
    async get(id) {
      if (!ID.test(id.toLowerCase())) return undefined;
      try {
        return JSON.parse(await readFile(pathOf(id), "utf8")) as ChannelRecord;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
      }
    },
    async delete(id) {
      await rm(pathOf(id), { force: true });
      await syncDir();
    },
    async list() {
      const names = (await readdir(dir)).filter((n) => n.endsWith(".json"));
      const out: ChannelRecord[] = [];
      for (const n of names) out.push(JSON.parse(await readFile(join(dir, n), "utf8")) as ChannelRecord);
      return out;
    },
  };
}
