// Where a command's time goes: named spans published on a diagnostics channel. Publishing costs
// nothing while nobody listens, so library code marks its steps without a switch of its own; the CLI
// listens only when PERSAM_DB_TIMINGS names a file (config.ts), and bench/ reads that file.

import { channel, subscribe, unsubscribe } from "node:diagnostics_channel";

/** One timed step. */
export interface TimingSpan {
  /** Dotted step name, e.g. `model.encoder` or `photo`. */
  readonly name: string;
  /** Milliseconds since the process started (`performance.now()`). */
  readonly startMs: number;
  readonly endMs: number;
  /** Small facts about the step (photo index, whether its embedding was cached, …). */
  readonly detail?: Readonly<Record<string, string | number | boolean>>;
}

const CHANNEL_NAME = "persam-db:timing";
const spans = channel(CHANNEL_NAME);

/** True while someone listens (callers may skip gathering details otherwise). */
export function timingTraced(): boolean {
  return spans.hasSubscribers;
}

/** Publish a finished span (nothing happens while nobody listens). */
export function publishSpan(span: TimingSpan): void {
  if (spans.hasSubscribers) spans.publish(span);
}

/**
 * Run `work` and publish its span, also when it throws. `detail` may be a function of the result,
 * called only while someone listens.
 */
export async function timeSpan<T>(
  name: string,
  work: () => Promise<T>,
  detail?: (result: T) => TimingSpan["detail"],
): Promise<T> {
  if (!spans.hasSubscribers) return work();
  const startMs = performance.now();
  const result = await work().catch((error: unknown) => {
    publishSpan({ name, startMs, endMs: performance.now(), detail: { failed: true } });
    throw error;
  });
  const details = detail?.(result);
  publishSpan({ name, startMs, endMs: performance.now(), ...(details ? { detail: details } : {}) });
  return result;
}

/**
 * Receive every span published from now on in this thread.
 * @returns a function that stops listening
 */
export function onTimingSpan(listener: (span: TimingSpan) => void): () => void {
  const handler = (message: unknown) => listener(message as TimingSpan);
  subscribe(CHANNEL_NAME, handler);
  return () => {
    unsubscribe(CHANNEL_NAME, handler);
  };
}
