/**
 * A failed `fetch` in words: Node's undici says only "fetch failed" and hides the cause (refused,
 * DNS, reset, timeout, TLS) one level down. Every place that reports an unreachable peer (the
 * CLI's `pay`, the facilitator's start-up check, the paywall's) says it the same way.
 */
export interface NetworkProblem {
  /** connection_refused | dns | connection_reset | timeout | tls | network_error, or the lower-cased error code. */
  code: string;
  message: string;
}

/**
 * `label` names what was asked (a URL for a user's own request; only the host for an RPC URL,
 * which may carry an API key in its path). `timeoutMs`: the caller's own deadline, if any.
 */
export function describeNetworkError(e: unknown, label: string, host: string, timeoutMs?: number): NetworkProblem {
  const name = (e as { name?: string } | undefined)?.name;
  if (name === "TimeoutError" || name === "AbortError") return { code: "timeout", message: `${label}: no answer${timeoutMs !== undefined ? ` within ${timeoutMs / 1000} s` : " in time"}` };
  const cause = (e as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const code = cause?.code ?? (e as { code?: string } | undefined)?.code;
  switch (code) {
    case "ECONNREFUSED":
      return { code: "connection_refused", message: `${label}: connection refused by ${host} (is it running?)` };
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return { code: "dns", message: `${label}: the host name ${host} could not be resolved` };
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return { code: "connection_reset", message: `${label}: the connection was closed before an answer` };
    case "UND_ERR_CONNECT_TIMEOUT":
      return { code: "timeout", message: `${label}: could not connect to ${host} in time` };
    default:
      if (code && /CERT|TLS|SSL/i.test(code)) return { code: "tls", message: `${label}: TLS failed (${code})` };
      return { code: code ? code.toLowerCase() : "network_error", message: `${label}: ${cause?.message ?? (e instanceof Error ? e.message : String(e))}` };
  }
}

/** The host[:port] of a URL, or the text itself when it is not one. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
