/**
 * JSON logs (pino) that cannot leak secrets: known secret fields are redacted by path, and
 * every line is scrubbed of the configured secrets and of anything shaped like an ECDSA
 * signature before it is written, whatever field it hid in.
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Exact strings never to write (private keys, API keys, database passwords). */
  secrets?: readonly string[];
  /** Where lines go (default stdout); tests pass a capturing stream. */
  destination?: DestinationStream;
}

const REDACT_PATHS = [
  "authorization",
  "signature",
  "privateKey",
  "privateKeys",
  "apiKeys",
  "databaseUrl",
  "*.authorization",
  "*.signature",
  "*.privateKey",
  "*.privateKeys",
  "*.apiKeys",
  "*.databaseUrl",
  "req.headers.authorization",
  "headers.authorization",
];

/** 65-byte signatures (and longer hex blobs such as EIP-6492 wrappers). */
const SIGNATURE_HEX = /0x[0-9a-fA-F]{130,}/g;

export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = (options.secrets ?? [])
    .filter((s) => typeof s === "string" && s.length >= 8)
    .flatMap((s) => (s.startsWith("0x") ? [s, s.slice(2)] : [s]));
  const patterns = secrets.map((s) => new RegExp(escapeRegExp(s), "gi"));
  return pino(
    {
      level: options.level ?? "info",
      base: { service: "tollgate-facilitator" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      hooks: {
        streamWrite(line) {
          let out = line.replace(SIGNATURE_HEX, "[redacted]");
          for (const p of patterns) out = out.replace(p, "[redacted]");
          return out;
        },
      },
    },
    options.destination,
  );
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
