// The watchdog between the tool and ffmpeg, alone: a dying Node sends its children one
// parent-death signal per thread, and ffmpeg must still get exactly one stop. No ffmpeg needed: the
// child is a Node that counts the SIGINTs it gets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { captureLauncher } from '../dist/record-audio.mjs'
import { tempDir, waitFor, requireBinary } from './helpers.mjs'

test("the watchdog under a dying many-threaded Node, 40 times: its child gets exactly one SIGINT each time (two abort ffmpeg's writes)", async () => {
  const setpriv = requireBinary('setpriv')
  const dir = tempDir()
  // The child counts SIGINTs; the parent is a Node like the tool, spawning as the tool does.
  const counter = path.join(dir, 'counter.cjs')
  fs.writeFileSync(
    counter,
    `const fs = require('fs'); let n = 0; fs.writeFileSync(process.argv[2] + '.ready', '');
     const report = () => { fs.writeFileSync(process.argv[2], String(n)); process.exit() };
     process.on('SIGINT', () => n++ || setTimeout(report, 300)); setTimeout(report, 10000)`,
  )
  const parent = path.join(dir, 'parent.cjs')
  fs.writeFileSync(
    parent,
    `require('child_process').spawn(process.argv[2], JSON.parse(process.argv[3]), { detached: true, stdio: 'pipe' });
     setInterval(() => {}, 1000)`,
  )
  const counts = []
  for (let run = 1; run <= 40; run++) {
    const out = path.join(dir, `count-${run}`)
    const [command, ...args] = [...captureLauncher(setpriv), process.execPath, counter, out]
    const node = spawn(process.execPath, [parent, command, JSON.stringify(args)], { stdio: 'ignore' })
    await waitFor(() => fs.existsSync(`${out}.ready`), 5000, `the counter to start (run ${run})`)
    node.kill('SIGKILL')
    await waitFor(() => fs.existsSync(out), 5000, `the counter to report (run ${run})`)
    counts.push(Number(fs.readFileSync(out, 'utf8')))
  }
  assert.deepEqual(counts, Array(40).fill(1))
})
