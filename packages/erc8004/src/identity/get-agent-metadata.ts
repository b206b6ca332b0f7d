import { hexToString, type Hex, type PublicClient } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";

/** One metadata entry: its raw bytes and, when they are valid UTF-8, the text. Unset keys read as "0x". */
export async function getAgentMetadata(
  publicClient: PublicClient,
  params: { agentId: bigint; key: string; registry?: `0x${string}` },
): Promise<{ hex: Hex; text: string | undefined }> {
  const hex = await publicClient.readContract({
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    abi: identityRegistryAbi,
    functionName: "getMetadata",
    args: [params.agentId, params.key],
  });
  return { hex, text: utf8OrUndefined(hex) };
}

function utf8OrUndefined(hex: Hex): string | undefined {
  const text = hexToString(hex);
  // hexToString replaces invalid sequences with U+FFFD; treat that as "not text".
  return text.includes("\uFFFD") ? undefined : text;
}
