// The marker of persam-db's random test weights (the tiny test model): a safetensors metadata key,
// so that every command can warn that such a model segments nothing meaningful.

import { readSafetensorsHeader } from "./safetensors.js";

/** safetensors metadata key that marks our random test weights. */
export const TEST_MODEL_METADATA_KEY = "persam_db_test_model";

/** True when a decoder safetensors file carries the test-model marker. */
export async function isTestModelFile(decoderPath: string): Promise<boolean> {
  const header = await readSafetensorsHeader(decoderPath);
  return header.metadata?.[TEST_MODEL_METADATA_KEY] !== undefined;
}
