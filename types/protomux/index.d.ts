// The part of protomux (3.x) that highwire uses. https://github.com/holepunchto/protomux
declare module 'protomux' {
  import type { Duplex } from 'node:stream'
  import type { Encoding } from 'compact-encoding'

  export interface Message<T> {
    send(value: T): boolean
  }
  export interface Channel {
    readonly opened: boolean
    readonly closed: boolean
    open(handshake?: unknown): void
    close(): void
    addMessage<T>(opts: { encoding: Encoding<T>; onmessage(value: T): unknown }): Message<T>
  }
  export interface ChannelOptions<H> {
    protocol: string
    id?: Uint8Array
    handshake?: Encoding<H>
    onopen?(handshake: H): unknown
    onclose?(): unknown
  }
  export default class Protomux {
    static from(stream: Duplex | Protomux): Protomux
    readonly stream: Duplex
    /** Returns null when the channel is a duplicate or was already closed by the remote. */
    createChannel<H>(opts: ChannelOptions<H>): Channel | null
  }
}
