// The part of compact-encoding (3.x) that highwire uses. https://github.com/holepunchto/compact-encoding
declare module 'compact-encoding' {
  namespace c {
    interface State {
      start: number
      end: number
      buffer: Uint8Array | null
    }
    interface Encoding<T> {
      preencode(state: State, value: T): void
      encode(state: State, value: T): void
      decode(state: State): T
    }
    function state(start?: number, end?: number, buffer?: Uint8Array | null): State
    function encode<T>(enc: Encoding<T>, value: T): Uint8Array
    function decode<T>(enc: Encoding<T>, buffer: Uint8Array): T
    const uint: Encoding<number>
    const uint8: Encoding<number>
    const biguint64: Encoding<bigint>
    const bool: Encoding<boolean>
    /** Length-prefixed bytes; decodes an empty buffer as null. */
    const buffer: Encoding<Uint8Array | null>
    const string: Encoding<string>
    /** The rest of the frame, no length prefix. */
    const raw: Encoding<Uint8Array>
    const fixed32: Encoding<Uint8Array>
    const fixed64: Encoding<Uint8Array>
    function fixed(n: number): Encoding<Uint8Array>
  }
  export = c
}
