// The election state a member must never forget across restarts (Raft's currentTerm and votedFor,
// plus the voters it has seen so that a restarted agent alone never counts itself a majority).
// One small JSON file, replaced atomically and fsynced before the vote that changed it is sent.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'

export interface MemberState {
  term: number
  votedFor: string | null
  voters: string[]
  /** The highest term a leader was seen in (the member's election view). */
  servedTerm: number
}

export const MEMBER_STATE_FILE = 'member-state.json'
const EMPTY: MemberState = { term: 0, votedFor: null, voters: [], servedTerm: 0 }

export function loadMemberState(dir: string): MemberState {
  let text: string
  try {
    text = readFileSync(join(dir, MEMBER_STATE_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY, voters: [] }
    throw err
  }
  const state = { servedTerm: 0, ...(JSON.parse(text) as Partial<MemberState>) } as MemberState
  const valid =
    Number.isSafeInteger(state.term) &&
    Number.isSafeInteger(state.servedTerm) &&
    state.term >= 0 &&
    (state.votedFor === null || /^[0-9a-f]{64}$/.test(state.votedFor)) &&
    Array.isArray(state.voters) &&
    state.voters.every((v) => /^[0-9a-f]{64}$/.test(v))
  if (!valid) throw new Error(`${join(dir, MEMBER_STATE_FILE)} is damaged; refusing to start with a forgotten vote`)
  return state
}

/** Durable when it returns: written to a temporary file, fsynced, renamed over, directory fsynced. */
export function saveMemberState(dir: string, state: MemberState): void {
  const path = join(dir, MEMBER_STATE_FILE)
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, JSON.stringify(state))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  const dirFd = openSync(dirname(path), 'r')
  try {
    fsyncSync(dirFd)
  } finally {
    closeSync(dirFd)
  }
}
