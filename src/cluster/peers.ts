// Authenticated peers and the health of their connections, for the cluster-status RPC and for the
// election (who is reachable). Times are unix ms from the swarm's injected clock.
import type { Hello } from './messages.ts'

export interface PeerStatus {
  /** Agent public key, hex. */
  key: string
  /** True when we dialled the connection. */
  initiator: boolean
  connectedAt: number
  /** Time of the last envelope accepted from this peer. */
  lastSeen: number
  /** Round-trip time of the last answered ping, or null before the first pong. */
  rttMs: number | null
  /** Its latest hello, or null until it has sent one. */
  hello: Hello | null
}

export class PeerTable {
  private readonly peers = new Map<string, PeerStatus>()

  connected(key: string, initiator: boolean, now: number): PeerStatus {
    const status: PeerStatus = { key, initiator, connectedAt: now, lastSeen: now, rttMs: null, hello: null }
    this.peers.set(key, status)
    return status
  }

  /** Removes `status` unless a newer connection of the same peer has replaced it. */
  disconnected(status: PeerStatus): void {
    if (this.peers.get(status.key) === status) this.peers.delete(status.key)
  }

  get(key: string): PeerStatus | undefined {
    return this.peers.get(key)
  }

  /** Peers that have sent their hello. */
  ready(): PeerStatus[] {
    return [...this.peers.values()].filter((p) => p.hello !== null)
  }

  list(): PeerStatus[] {
    return [...this.peers.values()]
  }
}
