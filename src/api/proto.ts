// The vendored lnmux API (proto/lnmux/lnmux.proto, see its README for provenance), loaded once at
// run time with @grpc/proto-loader, the same way src/lnd/proto.ts loads lnd's protos.
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

export const LNMUX_PROTO_DIR = fileURLToPath(new URL('../../proto/lnmux/', import.meta.url))
export const LNMUX_PROTO_FILE = 'lnmux.proto'

// Field names as in the .proto (snake_case), 64-bit integers as decimal strings (parsed to bigint
// by the server), enums by name, unset fields present with their default, bytes as Buffer.
export const LNMUX_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [LNMUX_PROTO_DIR]
}

const root = grpc.loadPackageDefinition(protoLoader.loadSync(LNMUX_PROTO_FILE, LNMUX_LOADER_OPTIONS))
const ctor = (root.lnmux as grpc.GrpcObject | undefined)?.Service
if (typeof ctor !== 'function') throw new Error(`lnmux proto: service lnmux.Service not found in ${LNMUX_PROTO_DIR}`)

/** Client constructor; its `.service` is what `server.addService` takes. */
export const LnmuxService = ctor as grpc.ServiceClientConstructor
