// unslab (1.x): copies a buffer that is a view of a larger one (a decoded frame, a pool slab) into
// one of its own, so that keeping it does not keep the larger one. https://github.com/holepunchto/unslab
declare module 'unslab' {
  /** `bytes` itself when it owns its whole ArrayBuffer, else a copy that does. */
  function unslab<T extends Uint8Array>(bytes: T): T
  namespace unslab {
    /** Each buffer that is a view of a larger one, copied into one new ArrayBuffer shared by these copies alone. */
    function all<T extends Uint8Array>(list: readonly T[]): T[]
  }
  export default unslab
}
