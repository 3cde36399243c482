// Reads queries from standard input, one JSON string per line, and writes what `qs.parse` makes
// of each (default options), one JSON value per line: the reference hookflow's query parser is
// compared with.
'use strict';

const qs = require('qs');
const readline = require('readline');

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on('line', (line) => {
  let parsed;
  try {
    parsed = qs.parse(JSON.parse(line));
  } catch (error) {
    parsed = { '(qs threw)': String(error) };
  }
  process.stdout.write(JSON.stringify(parsed) + '\n');
});
