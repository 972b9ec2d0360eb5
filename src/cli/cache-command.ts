// `persam-db cache info|clear`: persam-db's own cache of things it can always rebuild — photo
// embeddings (shared by every command) and prepared models (the encoder and decoder graphs as
// onnxruntime optimised them). Downloaded model files live in the Hugging Face cache and are
// managed with `persam-db models`.

import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Argv } from "yargs";
import { embeddingCacheBytes, persamCacheDir } from "../config.js";
import {
  DEFAULT_EMBEDDING_CACHE_BYTES,
  EmbeddingCache,
  embeddingCacheDir,
} from "../segment/sam/embedding-cache.js";
import { ModelCache, modelCacheDir } from "../segment/sam/model-cache.js";
import { defineCommand, type GlobalOptions } from "./command.js";
import { formatBytes } from "./progress.js";

interface CacheOptions {
  action: "info" | "clear";
}

/** The rebuildable parts of the cache folder, by name (`graphs`: decoder graphs of earlier versions). */
function parts(root: string): Record<string, string> {
  return { embeddings: embeddingCacheDir(root), models: modelCacheDir(root), graphs: join(root, "graphs") };
}

export const cacheCommand = defineCommand<CacheOptions>({
  command: "cache <action>",
  describe: "Show or clear persam-db's cache of photo embeddings and prepared models",
  builder: (yargs) =>
    yargs
      .positional("action", {
        type: "string",
        choices: ["info", "clear"],
        demandOption: true,
        describe: "info: where the cache is and how big; clear: remove it (it is rebuilt when needed)",
      })
      .example("$0 cache info", "where the cache is, its size and its limit")
      .example("$0 cache clear", "free the disk space; the next run encodes its photos again")
      .example("PERSAM_DB_EMBEDDING_CACHE=500M $0 prepare ./my-cat", "a smaller embedding cache")
      .epilogue(
        "The cache folder is PERSAM_DB_CACHE, else $XDG_CACHE_HOME/persam-db, else ~/.cache/persam-db. Downloaded models are in the Hugging Face cache: see 'persam-db models'.",
      ) as unknown as Argv<CacheOptions & GlobalOptions>,
  async handler(options, context) {
    const reporter = context.reporter(options);
    const root = persamCacheDir(context.io.env);
    const folders = parts(root);
    const limit = embeddingCacheBytes(context.io.env) ?? DEFAULT_EMBEDDING_CACHE_BYTES;
    const embeddings = new EmbeddingCache({ dir: folders.embeddings!, maxBytes: limit });
    const models = new ModelCache({ dir: folders.models! });
    if (options.action === "clear") {
      const before = await embeddings.usage();
      const modelsBefore = await models.usage();
      await embeddings.clear();
      await models.clear();
      await rm(folders.graphs!, { recursive: true, force: true });
      reporter.emitJson({
        action: "clear",
        dir: root,
        removedEmbeddings: before.entries,
        removedModels: modelsBefore.entries,
        freedBytes: before.bytes + modelsBefore.bytes,
      });
      reporter.result(
        `cleared ${root}: ${before.entries} embedding${before.entries === 1 ? "" : "s"} (${formatBytes(before.bytes)}) and ${modelsBefore.entries} prepared model file${modelsBefore.entries === 1 ? "" : "s"} (${formatBytes(modelsBefore.bytes)})`,
      );
      return;
    }
    const usage = await embeddings.usage();
    const modelUsage = await models.usage();
    reporter.emitJson({
      action: "info",
      dir: root,
      embeddings: { ...usage, limitBytes: limit, dir: folders.embeddings },
      models: { ...modelUsage, dir: folders.models },
    });
    reporter.result(`cache folder  ${root}`);
    reporter.result(
      `embeddings    ${usage.entries} photo${usage.entries === 1 ? "" : "s"}, ${formatBytes(usage.bytes)} of ${limit === 0 ? "0 (off)" : formatBytes(limit)}`,
    );
    reporter.result(
      `models        ${modelUsage.entries} prepared encoder/decoder graph${modelUsage.entries === 1 ? "" : "s"}, ${formatBytes(modelUsage.bytes)}`,
    );
  },
});
