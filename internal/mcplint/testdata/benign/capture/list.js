// Starts an MCP server over stdio, asks for tools/list, prints the result.
const { spawn } = require('child_process');
const [cmd, ...args] = process.argv.slice(2);
const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'], env: { ...process.env, SLACK_BOT_TOKEN: 'x', SLACK_TEAM_ID: 'x', BRAVE_API_KEY: 'x', GITHUB_PERSONAL_ACCESS_TOKEN: 'x', GITLAB_PERSONAL_ACCESS_TOKEN: 'x', GOOGLE_MAPS_API_KEY: 'x' } });
let buf = '';
const send = (m) => p.stdin.write(JSON.stringify(m) + '\n');
p.stdout.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    let m; try { m = JSON.parse(line); } catch { continue; }
    if (m.id === 1) {
      send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      send({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
    } else if (m.id === 2) {
      process.stdout.write(JSON.stringify(m.result, null, 2) + '\n');
      p.kill(); process.exit(0);
    }
  }
});
send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'writ-corpus', version: '0' } } });
setTimeout(() => { console.error('timeout'); p.kill(); process.exit(1); }, 20000);
