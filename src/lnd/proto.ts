// The vendored lnd v0.21.2-beta protos (proto/lnd), loaded once at run time with
// @grpc/proto-loader. Both the client (src/lnd/client.ts) and the simulator's grpc.Server
// (src/sim/) use these constructors, so the two speak exactly the same wire format.
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

export const LND_PROTO_VERSION = 'v0.21.2-beta'

// router.proto and invoices.proto `import "lightning.proto"`: proto/lnd is the include root.
export const LND_PROTO_DIR = fileURLToPath(new URL('../../proto/lnd/', import.meta.url))

const PROTO_FILES = ['lightning.proto', 'routerrpc/router.proto', 'invoicesrpc/invoices.proto']

// Field names as in the .proto (snake_case), 64-bit integers as decimal strings (converted to
// bigint at the client's edge), enums by name, unset fields present with their default, the name
// of the set oneof member reported, and `bytes` fields as Buffer (proto-loader's default).
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [LND_PROTO_DIR]
}

export const packageDefinition = protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS)

const root = grpc.loadPackageDefinition(packageDefinition)

function service (pkg: string, name: string): grpc.ServiceClientConstructor {
  const ns = root[pkg] as grpc.GrpcObject | undefined
  const ctor = ns?.[name]
  if (typeof ctor !== 'function') throw new Error(`lnd proto: service ${pkg}.${name} not found in ${LND_PROTO_DIR}`)
  return ctor as grpc.ServiceClientConstructor
}

// Client constructors: `new Lightning(host, credentials, options)`. Their `.service` is the
// grpc.ServiceDefinition a server passes to `server.addService(Lightning.service, impl)`.
export const Lightning = service('lnrpc', 'Lightning')
export const Router = service('routerrpc', 'Router')
export const Invoices = service('invoicesrpc', 'Invoices')
