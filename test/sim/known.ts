// Invariant violations the simulation found in src/ that are reported and not fixed yet. Each names
// the seed that shows it best; test/unit/sim-cluster.test.ts keeps that seed as a `todo` test (it
// passes once src/ is fixed, then the entry goes) and lets the many-seed run tell these apart from
// anything new. Match as narrowly as the diagnosis allows: a new bug must not hide behind an old one.
import type { Violation } from './cluster.ts'

export interface KnownIssue {
  name: string
  seed: number
  /** Whether `violation`, among all of one scenario's `violations`, is this issue or a consequence of it. */
  matches: (violation: Violation, violations: Violation[]) => boolean
}

export const KNOWN_ISSUES: KnownIssue[] = []

/** Issues the simulation found and that are fixed: their seeds stay as regression tests. */
export const FIXED_ISSUES: { name: string; seed: number }[] = [
  { name: 'the election view (term seen) was not persisted and record counts decided votes: no leader after restarts', seed: 27 },
  { name: 'a settle decision lost to a reconnect was never sent again', seed: 1810 },
  { name: 'a new leader sent preimages of gathered settle records before a majority stored them', seed: 4 },
  { name: 'without PreVote a stale candidate inflated its term and kept the cluster leaderless', seed: 1371 },
  { name: 'a failed campaign left a candidate that never stood again; a sole voter never re-committed what it held', seed: 2603 },
  { name: "a dead leader's uncommitted settle record was committed again after another leader failed parts of that set", seed: 9710 },
  { name: 'the same, seen from a different schedule', seed: 12142 },
  { name: 'the same, with a third leader in between', seed: 12431 }
]

export function knownIssue(violation: Violation, violations: Violation[]): KnownIssue | undefined {
  return KNOWN_ISSUES.find((k) => k.matches(violation, violations))
}
