// A newcomer's first hour (issue 22): a wrong feed id caught while recording, and the stop's command
// for the folder that has the recording; lines that fit a terminal of any width (through tmux).
// Real ffmpeg, a private PulseAudio, real growing recordings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { feedWarning, FEED_CHECK_S, WRONG_FEED_AFTER_S } from '../dist/record-audio.mjs'
import { TOOL, usePulse, startTool, startVideoRecorder, tempDir, waitFor, requireBinary } from './helpers.mjs'

const pulse = usePulse()

test('feedWarning: a missing feed folder early, a recording growing elsewhere named, nothing while all is well', () => {
  const seen = { feed: 'tank3', elapsedS: 1, feedExists: false, feedLive: false, elsewhere: [] }
  assert.equal(feedWarning(seen), null, 'too early: TracktorLive may start just after')
  assert.match(feedWarning({ ...seen, elapsedS: FEED_CHECK_S }), /^⚠ No folder tank3\/ here yet: TracktorLive writes/)
  const beside = { ...seen, elapsedS: FEED_CHECK_S, elsewhere: [{ dir: 'tank-3', growingS: 1 }] }
  assert.equal(
    feedWarning(beside),
    '⚠ No folder tank3/ here, but a recording grows in tank-3/: is the feed id tank-3?' +
      ' (recording goes on; the stop gives its command)',
  )
  // The folder exists (an earlier day's recordings): only a recording growing elsewhere for a while, and
  // none new in it, is a wrong feed id.
  const exists = { ...seen, feedExists: true, elapsedS: 30 }
  assert.equal(feedWarning(exists), null, 'no TracktorLive anywhere yet: nothing to tell apart')
  const other = [{ dir: 'tank-3', growingS: WRONG_FEED_AFTER_S - 1 }]
  assert.equal(feedWarning({ ...exists, elsewhere: other }), null, 'not for long yet')
  other[0].growingS = WRONG_FEED_AFTER_S
  assert.match(
    feedWarning({ ...exists, elsewhere: other }),
    /^⚠ No new recording in tank3\/, but one grows in tank-3\//,
  )
  assert.equal(feedWarning({ ...exists, feedLive: true, elsewhere: other }), null, 'two feeds at once: both fine')
})

/** A recording with a mistyped feed id (tank3) beside a real growing recording in tank-3/. */
async function mistypedFeed(cwd) {
  const video = startVideoRecorder(path.join(cwd, 'tank-3'))
  await sleep(500)
  const tool = startTool(['tank3', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  return { video, tool }
}

test('a mistyped feed id while a real recording grows beside it: said once, early; the stop names the folder and the command that syncs to it, which works', async () => {
  const cwd = tempDir()
  const { video, tool } = await mistypedFeed(cwd)
  let result
  try {
    // From the moment it records (a loaded machine takes seconds to start node and open the device).
    await waitFor(() => tool.stderr.includes('● Recording'), 15000, 'the recording to start')
    const startedMs = Date.now()
    await waitFor(() => /is the feed id tank-3\?/.test(tool.stderr), 10000, 'the early warning')
    const saidAfterS = (Date.now() - startedMs) / 1000
    assert.ok(saidAfterS < 6, `said after ${saidAfterS} s`)
    await sleep(2500)
  } finally {
    tool.ctrlC()
    result = await tool.exited
    await video.stop()
  }
  assert.equal(result.code, 0, result.stderr)
  const lines = result.stderr.split('\n')
  assert.equal(lines.filter((line) => line.includes('is the feed id')).length, 1, 'once')
  assert.ok(lines.some((line) => line.startsWith('⚠ No folder tank3/ here, but a recording grows in tank-3/')))
  const named = lines.findIndex((line) => /overlaps the audio .* is in tank-3\/: sync to it with$/.test(line))
  assert.ok(named > 0, result.stderr)
  const command = lines[named + 1].trim()
  const videoName = path.join('tank-3', path.basename(video.file))
  assert.equal(command, `record-audio mux tank3-audio-sync.json --video ${videoName}`)
  assert.ok(!result.stderr.includes('Once the video exists'), 'not the failing advice again')
  // The command as printed, run by a shell (the tool under its own name on PATH): it syncs to that video.
  const bin = tempDir('ra-bin-')
  fs.symlinkSync(TOOL, path.join(bin, 'record-audio'))
  const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` }
  const mux = spawnSync('bash', ['-c', `${command} --print`], { cwd, env, encoding: 'utf8' })
  assert.equal(mux.status, 0, mux.stderr)
  assert.ok(mux.stdout.includes(path.basename(video.file)), mux.stdout)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'tank3-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoFile, null, 'the stop synced nothing: the command does')
})

test('a feed folder that never appears (no TracktorLive running): said a few seconds in, and the recording goes on', async () => {
  const cwd = tempDir()
  const tool = startTool(['tank3', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  const startedMs = Date.now()
  await waitFor(() => tool.stderr.includes('No folder tank3/ here yet'), 10000, 'the early warning')
  const saidAfterS = (Date.now() - startedMs) / 1000
  assert.ok(saidAfterS >= FEED_CHECK_S - 0.5 && saidAfterS < 8, `said after ${saidAfterS} s`)
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.ok(fs.statSync(path.join(cwd, 'tank3-audio.wav')).size > 44)
  assert.match(result.stderr, /Once the video exists: record-audio mux tank3-audio-sync\.json/)
})

// ── A real terminal: tmux at 200 and 80 columns ───────────────────────────────────────────────

/** The tool in a tmux session `width` columns wide: its screen's rows as shown, ctrl-c, the end. */
function tmuxRun(cwd, width, args, env) {
  requireBinary('tmux', 'tmux')
  const name = `ra-i22-${process.pid}-${width}`
  const socket = path.join(cwd, 'tmux.sock')
  const tmux = (...a) => spawnSync('tmux', ['-S', socket, ...a], { encoding: 'utf8', env })
  const script = path.join(cwd, 'run.sh')
  const envLine = ['XDG_RUNTIME_DIR', 'HOME', 'PULSE_SERVER'].map((k) => `${k}='${env[k]}'`).join(' ')
  fs.writeFileSync(
    script,
    `cd '${cwd}' && env ${envLine} '${process.execPath}' '${TOOL}' ${args.join(' ')}; echo EXIT=$?; sleep 60\n`,
  )
  const started = tmux('new-session', '-d', '-s', name, '-x', String(width), '-y', '60', 'bash', script)
  assert.equal(started.status, 0, started.stderr)
  return {
    screen: () => tmux('capture-pane', '-p', '-t', name).stdout,
    ctrlC: () => tmux('send-keys', '-t', name, 'C-c'),
    kill: () => tmux('kill-server'),
  }
}

for (const width of [200, 80]) {
  test(`tmux at ${width} columns: no line cut, a warning's fix whole (wrapped by the tool at words at 80), a command kept whole`, async () => {
    const cwd = tempDir()
    const video = startVideoRecorder(path.join(cwd, 'tank-3'))
    await sleep(500)
    const term = tmuxRun(cwd, width, ['tank3', '--format', 'pulse', '--device', pulse.source], pulse.env)
    try {
      const flat = () => term.screen().replace(/\s+/g, ' ')
      await waitFor(() => flat().includes('the stop gives its command)'), 15000, 'the early warning')
      await sleep(1500)
      term.ctrlC()
      await waitFor(() => term.screen().includes('EXIT='), 20000, 'the tool to exit')
      const screen = term.screen()
      const rows = screen.split('\n').filter((row) => row.trim() !== '')
      console.log(`${width} columns:\n${screen}`)
      assert.match(screen, /EXIT=0/)
      // Nothing cut (the stopping line's … is its own).
      assert.ok(!rows.some((row) => row.trimEnd().endsWith('…') && !row.startsWith('■')), 'nothing cut')
      // The warning's fix whole: on one row at 200 columns; at 80, broken by the tool at a word, its
      // second row indented under the text (a terminal's fold would not indent it).
      const fix = 'is the feed id tank-3? (recording goes on; the stop gives its command)'
      const w = rows.findIndex((row) => row.startsWith('⚠ No folder tank3/ here, but'))
      assert.ok(w >= 0, screen)
      if (width === 200) {
        assert.ok(rows[w].endsWith(fix), `the fix on its row: ${rows[w]}`)
        assert.ok([...rows[w]].length > 120, 'longer than the old clip, and whole')
      } else {
        assert.ok([...rows[w]].length <= 80, rows[w])
        assert.match(rows[w + 1], /^ {2}\S/, `the tool's own break, indented: ${rows[w + 1]}`)
        assert.ok(`${rows[w]} ${rows[w + 1].trim()}`.endsWith(fix), `${rows[w]} | ${rows[w + 1]}`)
      }
      // The command to copy, whole: a row of its own, which only the terminal folds (rows joined back).
      const command = `record-audio mux tank3-audio-sync.json --video ${path.join('tank-3', path.basename(video.file))}`
      const at = rows.findIndex((row) => row.startsWith('  record-audio mux '))
      assert.ok(at >= 0, screen)
      assert.ok(
        rows
          .slice(at, at + 2)
          .join('')
          .startsWith(`  ${command}`),
        rows.slice(at, at + 2).join('|'),
      )
    } finally {
      term.kill()
      await video.stop()
    }
  })
}

// ── Words ─────────────────────────────────────────────────────────────────────────────────────

test("a device name one letter off the list: the error names the tool's --list-devices and the listed name", async () => {
  const cwd = tempDir()
  const typo = `${pulse.source.slice(0, -2)}${pulse.source.at(-1)}` // one letter dropped
  const tool = startTool(['feed', '--format', 'pulse', '--device', typo], { cwd, env: pulse.env })
  const result = await tool.exited
  assert.equal(result.code, 1)
  assert.match(result.stderr, new RegExp(`could not record from pulse device "${typo.replace('.', '\\.')}"`))
  assert.ok(
    result.stderr.includes(
      `  Did you mean --device ${pulse.source}? All of them: record-audio --list-devices --format pulse`,
    ),
    result.stderr,
  )
  assert.ok(!result.stderr.includes('-sources pulse'), "the tool's own listing, not ffmpeg's")
})

test('the default names taken by two earlier recordings: the renaming line names every taken file', async () => {
  const cwd = tempDir()
  for (const file of ['feed-audio.wav', 'feed-audio-sync.json', 'feed-audio-2-sync.json'])
    fs.writeFileSync(path.join(cwd, file), 'an earlier recording')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio-3.wav'))
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.ok(
    result.stderr.includes(
      '  feed-audio.wav, feed-audio-sync.json, feed-audio-2-sync.json exist (earlier recordings, kept):' +
        ' recording to feed-audio-3.wav instead.',
    ),
    result.stderr,
  )
  for (const file of ['feed-audio.wav', 'feed-audio-sync.json', 'feed-audio-2-sync.json'])
    assert.equal(fs.readFileSync(path.join(cwd, file), 'utf8'), 'an earlier recording', `${file} kept`)
})
