// looksLikeHubToken: the rule that keeps a Hub token out of captions, identifiers and class nouns.

import { describe, expect, it } from "vitest";
import { looksLikeHubToken } from "../src/util/hub-token.js";

describe("looksLikeHubToken", () => {
  it("finds hf_ followed by 20 or more letters or digits anywhere in the value", () => {
    const token = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567";
    expect(looksLikeHubToken(token)).toBe(true);
    expect(looksLikeHubToken(`a photo of ${token} cat`)).toBe(true);
    expect(looksLikeHubToken(`x${token}`)).toBe(true);
    expect(looksLikeHubToken("hf_01234567890123456789")).toBe(true);
  });

  it("leaves ordinary words, short hf_ words and the default identifier alone", () => {
    for (const value of [
      "sks",
      "cat",
      "a photo of {token} {class}",
      "hf_cat",
      "hf_0123456789012345678",
      "HF_",
    ]) {
      expect(looksLikeHubToken(value), value).toBe(false);
    }
  });
});
