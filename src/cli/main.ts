// The command line: `node src [command] [args]`.
import { initCommand } from './init.ts'
import { decodeCommand } from './decode.ts'
import { runCommand } from './run.ts'
import { demoCommand } from './demo.ts'
import { auditCommand } from './audit.ts'
import { statusCommand } from './status.ts'

const HELP = `highwire: one Lightning receiving identity served by many LND nodes and operators

usage: node src [command] [options]

commands:
  run                      start the agent (the default), configured by config/local.json over
                           config/default.json (NODE_CONFIG_DIR to use another folder)
  init [--candidate]       write config/local.json with a fresh 32-byte cluster secret (or the one
       [--secret HEX]      the other operators gave you) and, with --candidate, a fresh identity key;
       [--regtest]         --regtest adds Alice and Bob of the regtest network (npm run regtest -- up)
  decode <bolt11>          print a BOLT 11 invoice as JSON and check its signature
  demo                     simulated LND nodes, one invoice paid in two parts through two nodes,
                           accepted and settled through the lnmux API: the whole path in a minute
  status [--json]          ask the running agent (api.listen from the config) for its view of the
         [--api HOST:PORT] cluster: term, leader, members and their nodes, connection health, lnd
  audit <verify|timeline|state|statement>
                           read the audit log read-only (works beside a running agent): verify every
                           core and stored envelope, print the timeline, the settle registry, or the
                           operator statement; [--storage PATH] [--core KEY|--all] [--json]
       [--since T] [--until T] [--type T,..] [--hash H] [--node N] [--follow]
                           T is an ISO time or a duration ago (1h); --follow tails the timeline
  help                     this text

environment: HIGHWIRE_SECRET and HIGHWIRE_IDENTITY_KEY override cluster.secret and mux.identityKey`

const print = (line: string): void => {
  process.stdout.write(line + '\n')
}
const printError = (line: string): void => {
  process.stderr.write(line + '\n')
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  const command = first === undefined || first.startsWith('-') ? 'run' : first
  const args = command === first ? rest : argv
  switch (command) {
    case 'run':
      if (args.includes('--help') || args.includes('-h')) return help()
      return runCommand(args, printError)
    case 'init':
      return initCommand(args, (line) => (line.startsWith('init:') ? printError(line) : print(line)))
    case 'decode':
      return decodeCommand(args, print)
    case 'demo':
      return demoCommand(args, print)
    case 'status':
      return statusCommand(args, print, printError)
    case 'audit':
      return auditCommand(args, print, printError)
    case 'help':
      return help()
    default:
      printError(`unknown command ${JSON.stringify(command)}; \`node src help\` lists the commands`)
      return 2
  }
}

function help(): number {
  print(HELP)
  return 0
}
