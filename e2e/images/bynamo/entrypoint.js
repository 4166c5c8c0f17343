// Entrypoint of the e2e stand-in for Bynamo: dynalite (the DynamoDB API on LevelDB) configured
// from the environment the operator renders. See docs/images.md ("bynamo").
//
//   BYNAMO_PORT        port to listen on (default 8000)
//   BYNAMO_DATA_DIR    LevelDB directory, persisted across restarts (default /data)
//   BYNAMO_HOST        address to bind (default: all addresses)
//   BYNAMO_NODE_NAME, BYNAMO_PEERS, BYNAMO_ACCESS_KEY_ID, BYNAMO_SECRET_ACCESS_KEY
//                      accepted and logged (the secret never is); dynalite is a single node and
//                      does not verify request signatures.
//
// Node ignores SIGTERM when it runs as pid 1 unless a handler is installed: this one closes the
// HTTP server and the LevelDB store, then exits 0.
'use strict'

const path = require('path')
const dynalite = require('dynalite')

const env = process.env
const port = parseInt(env.BYNAMO_PORT || '8000', 10)
const dataDir = env.BYNAMO_DATA_DIR || '/data'
const host = env.BYNAMO_HOST || undefined

if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`bynamo: BYNAMO_PORT=${env.BYNAMO_PORT} is not a port`)
  process.exit(2)
}

const server = dynalite({ path: path.resolve(dataDir) })
server.on('error', (err) => {
  console.error(`bynamo: ${err.message}`)
  process.exit(1)
})
server.listen(port, host, () => {
  console.log(JSON.stringify({
    msg: 'bynamo (dynalite) listening',
    version: env.INSYNC_VERSION || null,
    port,
    dataDir,
    node: env.BYNAMO_NODE_NAME || null,
    peers: (env.BYNAMO_PEERS || '').split(',').filter(Boolean),
    accessKeyId: env.BYNAMO_ACCESS_KEY_ID ? 'set' : 'unset',
  }))
})

let stopping = false
function stop (signal) {
  if (stopping) return
  stopping = true
  console.log(JSON.stringify({ msg: 'bynamo stopping', signal }))
  // Idle keep-alive connections would hold close() open on Node 18.
  setTimeout(() => { console.error('bynamo: close timed out'); process.exit(1) }, 10000).unref()
  server.close((err) => {
    if (err) console.error(`bynamo: close: ${err.message}`)
    process.exit(err ? 1 : 0)
  })
  if (typeof server.closeAllConnections === 'function') server.closeAllConnections()
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
