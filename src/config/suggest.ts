// "Did you mean …?" for misspelt element and attribute names: Levenshtein distance against
// the names farmlb knows at that place.

export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest known name, if it is close enough to be a typo (case-insensitive). */
export function closest(name: string, known: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  // Short names tolerate fewer edits: "pwer" → "power" (1), but "ab" is not "id".
  const limit = Math.max(1, Math.min(3, Math.floor(lower.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = levenshtein(lower, k.toLowerCase());
    if (d < bestDistance) { best = k; bestDistance = d; }
  }
  return bestDistance <= limit ? best : undefined;
}

/** A hint: "did you mean power?" or the list of what is accepted. */
export function didYouMean(name: string, known: readonly string[], what: string): string {
  const guess = closest(name, known);
  if (guess) return `did you mean ${guess}?`;
  return known.length ? `${what}: ${known.join(', ')}` : `${what}: none`;
}
