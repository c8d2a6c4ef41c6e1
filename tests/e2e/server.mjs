// Shared by the browser tests: stopping the `signet serve` child they start.

/**
 * Stops the server with SIGINT and waits (at most 15 s) until it has exited: Signet writes its
 * shutdown records as it stops, so removing its data directory before then fails (ENOTEMPTY).
 */
export async function stopServer(server) {
  server.removeAllListeners('exit');
  const exited = server.exitCode !== null ? Promise.resolve() : new Promise((done) => server.once('exit', done));
  server.kill('SIGINT');
  await Promise.race([exited, new Promise((done) => setTimeout(done, 15_000))]);
}
