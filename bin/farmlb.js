#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built by scripts/setup.sh).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err?.stack ?? String(err)); process.exitCode = 70; },
);
