// Recognising a Hugging Face token in a value that is about to be written into a dataset (a
// caption, an identifier, a class noun), so that it is refused before it can be published.

/** `hf_` followed by at least 20 token characters, anywhere in the text. */
const HUB_TOKEN = /hf_[A-Za-z0-9]{20,}/;

/**
 * True when `value` contains something shaped like a Hugging Face access token: `hf_` followed by
 * 20 or more letters or digits, anywhere in the value (real tokens carry 34). Short words that
 * merely start with `hf_` are not tokens.
 */
export function looksLikeHubToken(value: string): boolean {
  return HUB_TOKEN.test(value);
}
