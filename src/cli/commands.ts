// The list of CLI commands, in the order --help shows them. Each entry holds what --help lists
// (the command string and its description) and how to load the command's module: a module, and
// the heavy libraries it imports (onnxruntime, sharp, the Hub client), loads only when its command
// is named, so `--help` and `--version` start as fast as node itself.

import type { CommandDefinition } from "./command.js";

/** One command as the top-level --help lists it; `load` brings its module. */
export interface CommandEntry {
  /** yargs command string, e.g. `mask <image>`: the same as the loaded definition's. */
  readonly command: string;
  /** One line for --help: the same as the loaded definition's. */
  readonly describe: string;
  /** Import the command's module and return its definition. */
  load(): Promise<CommandDefinition<never>>;
}

const as = (definition: CommandDefinition<unknown>) => definition as CommandDefinition<never>;

export const commands: readonly CommandEntry[] = [
  {
    command: "prepare <inputs..>",
    describe:
      "Turn a folder of photos (or a video) of one subject into a DreamBooth training set (PerSAM masks); several inputs make one set each",
    load: async () => as((await import("./prepare-command.js")).prepareCommand),
  },
  {
    command: "review <out>",
    describe:
      "Review a prepared set in the browser: fix doubtful masks with a click, include or exclude photos",
    load: async () => as((await import("./review-command.js")).reviewCommand),
  },
  {
    command: "segment <dir>",
    describe: "Mask the subject in every photo of a folder with PerSAM (one reference, no training)",
    load: async () => as((await import("./segment-command.js")).segmentCommand),
  },
  {
    command: "eval <dir>",
    describe: "Score PerSAM on a PerSeg-layout folder (mIoU, mAcc) the way the paper's evaluation does",
    load: async () => as((await import("./eval-command.js")).evalCommand),
  },
  {
    command: "mask <image>",
    describe: "Segment one photo with plain SAM from clicks and/or a box",
    load: async () => as((await import("./mask-command.js")).maskCommand),
  },
  {
    command: "push <out>",
    describe: "Publish an output folder as a Hugging Face dataset (only new or changed files)",
    load: async () => as((await import("./push-command.js")).pushCommand),
  },
  {
    command: "models [action] [id]",
    describe: "List, download, verify and locate the SAM models (Hugging Face cache)",
    load: async () => as((await import("./models-command.js")).modelsCommand),
  },
  {
    command: "cache <action>",
    describe: "Show or clear persam-db's cache of photo embeddings and prepared models",
    load: async () => as((await import("./cache-command.js")).cacheCommand),
  },
  {
    command: "doctor",
    describe: "Check that this machine is ready: Node, onnxruntime, sharp, caches, Hub, token, models",
    load: async () => as((await import("./doctor-command.js")).doctorCommand),
  },
];
