// Constants shared by every SAM variant (persam-spec §0.1): only the image encoder differs.

/** Side of the square encoder input (the 1024 frame). */
export const ENCODER_SIDE = 1024;
/** Side of the image-embedding grid (patch 16). */
export const GRID_SIDE = 64;
/** Number of embedding tokens, GRID_SIDE². */
export const GRID_TOKENS = GRID_SIDE * GRID_SIDE;
/** Side of the low-res mask logits and of the mask input. */
export const LOW_RES_SIDE = 256;
/** Per-channel pixel mean, RGB, 0–255 scale. */
export const PIXEL_MEAN = [123.675, 116.28, 103.53] as const;
/** Per-channel pixel std, RGB, 0–255 scale. */
export const PIXEL_STD = [58.395, 57.12, 57.375] as const;
/** Mask logits above this (strictly) are foreground. */
export const MASK_THRESHOLD = 0;
/** Number of mask tokens (1 single-mask + 3 multimask outputs). */
export const NUM_MASK_TOKENS = 4;
/** PIL's fixed-point precision for 8-bit resampling (`PRECISION_BITS = 32 − 8 − 2`, persam-spec §1.1.3). */
export const PRECISION_BITS = 22;
/** PIL's rounding term: every resize accumulator starts at one half in fixed point. */
export const HALF = 1 << (PRECISION_BITS - 1);
