// SAM prompts in original-photo pixels → the decoder's labelled points in the 1024 frame, with the
// padding-point rule of persam-spec §2.2 (a box is two points labelled 2 and 3).

import type { Box, Point, Size } from "../../util/tensor.js";
import { transformBox, transformPoints } from "./preprocess.js";

/** A click: label 1 = on the subject, 0 = not on the subject. */
export interface Click {
  readonly point: Point;
  readonly label: 0 | 1;
}

/** Points and/or a box, in original-photo pixels. */
export interface SamPrompt {
  readonly clicks?: readonly Click[] | undefined;
  readonly box?: Box | undefined;
}

/** Labelled points in the 1024 frame, ready for `DecoderInputs`. */
export interface PromptPoints {
  readonly pointCoords: Float32Array;
  readonly pointLabels: Float32Array;
}

/**
 * Encode a prompt as the decoder's labelled points (spec §1.2, §2.2): user clicks in order, then
 * either the box corners (labels 2, 3) or — when there are clicks and no box — one padding point
 * (0, 0) with label −1, exactly as SAM's predictor does. Neither clicks nor box: no points.
 */
export function promptPoints(prompt: SamPrompt, originalSize: Size, inputSize: Size): PromptPoints {
  const clicks = prompt.clicks ?? [];
  const n = clicks.length + (prompt.box ? 2 : clicks.length > 0 ? 1 : 0);
  const pointCoords = new Float32Array(n * 2);
  const pointLabels = new Float32Array(n);
  if (clicks.length > 0) {
    pointCoords.set(
      transformPoints(
        clicks.map((c) => c.point),
        originalSize,
        inputSize,
      ),
    );
    clicks.forEach((c, i) => {
      pointLabels[i] = c.label;
    });
  }
  const k = clicks.length;
  if (prompt.box) {
    pointCoords.set(transformBox(prompt.box, originalSize, inputSize), k * 2);
    pointLabels[k] = 2;
    pointLabels[k + 1] = 3;
  } else if (k > 0) {
    // Padding point: its coordinates are irrelevant because label −1 replaces the PE (§2.2).
    pointLabels[k] = -1;
  }
  return { pointCoords, pointLabels };
}
