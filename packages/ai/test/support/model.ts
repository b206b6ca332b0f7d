/**
 * A scripted language model for the agent tests: the AI SDK's own MockLanguageModelV4 (from
 * `ai/test`), answering each generate call with the next step of a script. A step is either tool
 * calls or a final text; a step may be a function of the prompt so far, so the script can read
 * the tool results the SDK fed back (which is how a real model would decide its next move).
 */
import { MockLanguageModelV4 } from "ai/test";

export interface ToolCallStep {
  toolCalls: { toolName: string; input: unknown }[];
}
export interface TextStep {
  text: string;
}
type Prompt = Parameters<MockLanguageModelV4["doGenerate"]>[0]["prompt"];
export type Step = ToolCallStep | TextStep | ((prompt: Prompt) => ToolCallStep | TextStep);

const usage = {
  inputTokens: { total: 10, noCache: 10, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 5, text: 5, reasoning: undefined },
};

export function scriptedModel(steps: Step[]): MockLanguageModelV4 & { prompts: Prompt[] } {
  let i = 0;
  let callId = 0;
  const prompts: Prompt[] = [];
  const model = new MockLanguageModelV4({
    doGenerate: async (options) => {
      prompts.push(options.prompt);
      const raw = steps[i++];
      if (!raw) throw new Error(`scriptedModel: no step ${i} in the script`);
      const step = typeof raw === "function" ? raw(options.prompt) : raw;
      if ("text" in step) {
        return { content: [{ type: "text", text: step.text }], finishReason: { unified: "stop", raw: undefined }, usage, warnings: [] };
      }
      return {
        content: step.toolCalls.map((c) => ({ type: "tool-call" as const, toolCallId: `call-${++callId}`, toolName: c.toolName, input: JSON.stringify(c.input) })),
        finishReason: { unified: "tool-calls", raw: undefined },
        usage,
        warnings: [],
      };
    },
  });
  return Object.assign(model, { prompts });
}

/** The tool results the SDK fed back to the model in `prompt`, in order (their `output.value`). */
export function toolResultsIn(prompt: Prompt): unknown[] {
  const out: unknown[] = [];
  for (const message of prompt) {
    if (message.role !== "tool") continue;
    for (const part of message.content) if (part.type === "tool-result") out.push((part.output as { value?: unknown }).value);
  }
  return out;
}
