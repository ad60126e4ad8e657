// The watchdog between the tool and ffmpeg, alone: a dying Node sends its children one
// parent-death signal per thread, and ffmpeg must still get exactly one stop. No ffmpeg needed: the
// child is a Node that counts the stops it gets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { captureLauncher } from '../dist/record-audio.mjs'
import { tempDir, waitFor, requireBinary } from './helpers.mjs'

const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A Node parent spawning `child` through the watchdog as the tool does; the child writes `<out>.ready` with its PID. */
function parentOf(dir, childScript, out) {
  const parent = path.join(dir, 'parent.cjs')
  fs.writeFileSync(
    parent,
    `require('child_process').spawn(process.argv[2], JSON.parse(process.argv[3]), { detached: true, stdio: 'pipe' });
     setInterval(() => {}, 1000)`,
  )
  const [command, ...args] = [...captureLauncher(requireBinary('setpriv')), process.execPath, childScript, out]
  return spawn(process.execPath, [parent, command, JSON.stringify(args)], { stdio: 'ignore' })
}

test("the watchdog under a dying many-threaded Node, 40 times: its child gets exactly one stop signal each time (two abort ffmpeg's writes)", async () => {
  const dir = tempDir()
  // The child counts stops (SIGTERM, the parent-death signal, and SIGINT, should one come), its
  // handlers set before it says it is ready.
  const counter = path.join(dir, 'counter.cjs')
  fs.writeFileSync(
    counter,
    `const fs = require('fs'); let n = 0;
     const report = () => { fs.writeFileSync(process.argv[2], String(n)); process.exit() };
     for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => n++ || setTimeout(report, 300));
     setTimeout(report, 10000); fs.writeFileSync(process.argv[2] + '.ready', process.pid + ' ' + process.ppid)`,
  )
  const counts = []
  const failures = []
  for (let run = 1; run <= 40; run++) {
    const out = path.join(dir, `count-${run}`)
    const node = parentOf(dir, counter, out)
    await waitFor(() => fs.existsSync(`${out}.ready`), 5000, `the counter to start (run ${run})`)
    const [, shellPid] = fs.readFileSync(`${out}.ready`, 'utf8').split(' ').map(Number)
    node.kill('SIGKILL')
    await waitFor(() => fs.existsSync(out), 15000, `the counter to report (run ${run})`)
    counts.push(Number(fs.readFileSync(out, 'utf8')))
    // For the message: did the shell outlive the tool (its state in /proc, Z a zombie)?
    const shell = fs.existsSync(`/proc/${shellPid}/stat`) ? fs.readFileSync(`/proc/${shellPid}/stat`, 'utf8') : ''
    if (counts.at(-1) !== 1)
      failures.push(
        `run ${run}: ${counts.at(-1)} stops; the shell ${shell ? `state ${shell.split(') ')[1]?.[0]}` : 'gone'}`,
      )
  }
  assert.deepEqual(counts, Array(40).fill(1), failures.join('; '))
})

test('the watchdog: a tool killed before its ffmpeg has set a handler (ffmpeg parsing its options) leaves no ffmpeg running', async () => {
  const dir = tempDir()
  // Like ffmpeg before it sets its handlers: signals at the dispositions it inherited, for 1.5 s. A
  // shell starts a background job with SIGINT ignored; a parent-death SIGINT would be lost here. The
  // child is a shell (a Node child would not do: Node resets every disposition when it starts).
  const out = path.join(dir, 'slow')
  const slow = path.join(dir, 'slow.sh')
  fs.writeFileSync(slow, 'echo $$ > "$1.ready"; sleep 1.5; echo survived > "$1"; sleep 10\n')
  const parent = path.join(dir, 'parent.cjs')
  fs.writeFileSync(
    parent,
    `require('child_process').spawn(process.argv[2], JSON.parse(process.argv[3]), { detached: true, stdio: 'pipe' });
     setInterval(() => {}, 1000)`,
  )
  const [command, ...args] = [...captureLauncher(requireBinary('setpriv')), '/bin/sh', slow, out]
  const node = spawn(process.execPath, [parent, command, JSON.stringify(args)], { stdio: 'ignore' })
  await waitFor(
    () => fs.existsSync(`${out}.ready`) && fs.readFileSync(`${out}.ready`, 'utf8').trim(),
    5000,
    'the child',
  )
  const childPid = Number(fs.readFileSync(`${out}.ready`, 'utf8'))
  node.kill('SIGKILL')
  await waitFor(() => !alive(childPid), 3000, 'the child to die with its tool').catch((error) => {
    process.kill(childPid, 'SIGKILL') // started by this test
    throw error
  })
  await new Promise((resolve) => setTimeout(resolve, 2000)) // past the child's 1.5 s
  assert.equal(fs.existsSync(out), false, 'the child ran on after its tool died')
})
