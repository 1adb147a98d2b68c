// npm run regtest -- <build|up|down|status|ensure|mine N|stop NODE|start NODE>
import { build, formatSeconds } from './build.ts'
import { up, down, status, ensure, mine, stopNode, startNode, NODE_NAMES, type NodeName } from './network.ts'
import { ENV_FILE } from './paths.ts'

const USAGE = `usage: npm run regtest -- <command>
  build         build pinned lnd, lncli, btcd, btcctl (cached per version)
  up            start btcd + alice, bob, carol with funded channels (no-op when up)
  down          stop everything started, by pid
  status        show what is running
  ensure        build if needed, then up if not up
  mine <n>      mine n blocks and wait for the running nodes to sync
  stop <node>   stop one lnd node (alice|bob|carol)
  start <node>  start it again and wait until its channels are active`

function nodeArg (arg: string | undefined): NodeName {
  if (!NODE_NAMES.includes(arg as NodeName)) throw new Error(`expected a node name (${NODE_NAMES.join('|')}), got ${arg ?? 'nothing'}`)
  return arg as NodeName
}

async function main (argv: string[]): Promise<void> {
  const [command, arg] = argv
  const started = Date.now()
  switch (command) {
    case 'build': await build(); break
    case 'up': await up(); break
    case 'down': await down(); break
    case 'ensure': await ensure(); break
    case 'status': {
      const s = status()
      for (const d of s.daemons) console.log(`${d.name.padEnd(6)} ${d.running ? `running, pid ${d.pid}` : 'stopped'}`)
      console.log(s.up ? `up; env: ${ENV_FILE}` : 'not up')
      return
    }
    case 'mine': {
      const n = Number(arg)
      if (!Number.isInteger(n) || n < 1) throw new Error(`mine: expected a positive block count, got ${arg ?? 'nothing'}`)
      console.log((await mine(n)).join('\n'))
      break
    }
    case 'stop': await stopNode(nodeArg(arg)); break
    case 'start': await startNode(nodeArg(arg)); break
    default:
      console.error(USAGE)
      process.exitCode = command === undefined || command === 'help' ? 0 : 2
      return
  }
  console.error(`${command}: ${formatSeconds((Date.now() - started) / 1000)}`)
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  console.error(`regtest: ${err.code !== undefined ? `[${err.code}] ` : ''}${err.message}`)
  process.exitCode = 1
})
