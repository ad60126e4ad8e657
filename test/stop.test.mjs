// Every way a recording can be stopped, signalled or killed: the WAV finalized, every sample kept,
// no process left; with the real ffmpeg and a real PulseAudio server. Each test name states the outcome.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SAME_REQUEST_MS } from '../dist/record-audio.mjs'
import {
  usePulse,
  startVideoRecorder,
  startTool,
  tempDir,
  readWav,
  decodeAudio,
  run,
  alive,
  waitFor,
  ffmpegPidsIn,
  requireBinary,
  TOOL,
  recordThenStop,
  recordingFor,
  assertCompleteStop,
} from './helpers.mjs'

const pulse = usePulse()

for (const [how, stop] of [
  ['ctrl-c (SIGINT to the process group)', (tool) => tool.ctrlC()],
  ['SIGINT to the tool alone', (tool) => process.kill(tool.child.pid, 'SIGINT')],
  ['SIGTERM', (tool) => process.kill(tool.child.pid, 'SIGTERM')],
  ['SIGHUP', (tool) => process.kill(tool.child.pid, 'SIGHUP')],
]) {
  test(`${how}: WAV finalized with every sample up to the stop, sync file and command written, no process left, exit 0`, async () => {
    const s = await recordThenStop(pulse, stop)
    assertCompleteStop(s)
    assert.equal(s.result.stdout.trim(), s.sync.muxCommand)
  })
}

test('terminal closed (tmux session killed, SIGHUP with no terminal left to print to): WAV finalized, sync file written, no process left', async () => {
  requireBinary('tmux')
  const cwd = tempDir()
  const socket = path.join(cwd, '.tmux')
  const env = { ...pulse.env, TMUX: '' }
  const tmux = (...args) => spawnSync('tmux', ['-S', socket, ...args], { env, encoding: 'utf8' })
  const command = `cd ${JSON.stringify(cwd)} && exec ${JSON.stringify(process.execPath)} ${JSON.stringify(TOOL)} hup --format pulse --device ${pulse.source}`
  assert.equal(tmux('new-session', '-d', '-s', 'ra', '-x', '200', '-y', '50', command).status, 0)
  const wavPath = path.join(cwd, 'hup-audio.wav')
  // Past the tool's empty reservation of the name: ffmpeg has written the header.
  await waitFor(() => fs.existsSync(wavPath) && fs.statSync(wavPath).size > 0, 10000, 'the recording to start')
  await sleep(1500)
  const stopAtMs = Date.now()
  tmux('kill-server')
  // The sync file is reserved at the start; the stop replaces it (a rename) with the audio's start in it.
  const syncOf = () => {
    try {
      return JSON.parse(fs.readFileSync(path.join(cwd, 'hup-audio-sync.json'), 'utf8'))
    } catch {
      return null
    }
  }
  await waitFor(() => typeof syncOf()?.audioStartEpochS === 'number', 5000, 'the sync file')
  const sync = syncOf()
  await waitFor(() => ffmpegPidsIn(cwd).length === 0, 3000, 'ffmpeg to exit')
  const wav = readWav(wavPath)
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
  assert.ok(stopAtMs / 1000 - sync.audioStartEpochS - wav.samples / 48000 < 0.02, 'every sample up to the stop')
})

test('two ctrl-c a moment apart (a person, not npm): the second forces the stop, WAV still finalized and readable, exit 0', async () => {
  const s = await recordThenStop(
    pulse,
    async (tool) => {
      tool.ctrlC()
      await sleep(SAME_REQUEST_MS + 30)
      tool.ctrlC()
      // 2 s capture fragments: the stop's drain lasts long enough for a second press to land in it.
    },
    { env: { PULSE_LATENCY_MSEC: '2000' } },
  )
  assert.equal(s.result.code, 0, s.result.stderr)
  assert.match(s.result.stderr, /Stopping now/)
  const wav = readWav(s.wavPath)
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
  assert.ok(wav.samples > 1.5 * 48000)
  assert.deepEqual(ffmpegPidsIn(s.cwd), [])
})

test('two SIGINTs 1 ms apart (npx where /bin/sh is bash forwards the ctrl-c): one stop, every sample up to it, nothing forced', async () => {
  const s = await recordThenStop(pulse, async (tool) => {
    tool.ctrlC()
    await sleep(1)
    process.kill(tool.child.pid, 'SIGINT')
  })
  assertCompleteStop(s)
  assert.doesNotMatch(s.result.stderr, /Stopping now/)
})

test('tool killed with SIGKILL, 10 times out of 10: ffmpeg gets one stop and finalizes the WAV itself; the sync file holds the start', async () => {
  for (let run = 1; run <= 10; run++) {
    const { cwd, wavPath, tool, ffmpegPid } = await recordingFor(pulse, 0.6)
    process.kill(tool.child.pid, 'SIGKILL')
    await tool.exited
    await waitFor(() => !alive(ffmpegPid), 3000, `ffmpeg to stop after the tool died (run ${run})`)
    const wav = readWav(wavPath)
    assert.equal(wav.riffSize, wav.fileBytes - 8, `run ${run}: RIFF size written by ffmpeg`)
    assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, `run ${run}: data size written by ffmpeg`)
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
    assert.equal(typeof sync.audioStartEpochS, 'number', `run ${run}: the first sample's time survives the kill`)
    assert.deepEqual(ffmpegPidsIn(cwd), [])
  }
})

test('no shell start-up file runs: a ~/.bashrc and a $BASH_ENV that leave a marker never run, through recording and --mux', async () => {
  const cwd = tempDir()
  const home = tempDir('ra-home-')
  const marker = path.join(home, 'marker')
  fs.writeFileSync(path.join(home, '.bashrc'), `echo bashrc >> '${marker}'\n`)
  fs.writeFileSync(path.join(home, 'env.sh'), `echo bash_env >> '${marker}'\n`)
  // A top-level shell (no SHLVL), as when the tool is started from a launcher or a service.
  const { SHLVL, ...env } = { ...pulse.env, HOME: home, BASH_ENV: path.join(home, 'env.sh') }
  const video = startVideoRecorder(path.join(cwd, 'feed'))
  await sleep(300)
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source, '--mux'], { cwd, env })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(1000)
  await video.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /✔ Muxed: /)
  assert.equal(fs.existsSync(marker), false, fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '')
})

test('tool killed with SIGKILL: ffmpeg stops within 2 s, every sample is kept, and after record-audio repair every reader sees the right length', async () => {
  const { cwd, wavPath, tool, ffmpegPid, recordingAtMs } = await recordingFor(pulse, 1.5)
  process.kill(tool.child.pid, 'SIGKILL')
  const killedAtMs = Date.now()
  await tool.exited
  await waitFor(() => !alive(ffmpegPid), 2000, 'ffmpeg to stop after the tool died')
  // The parent-death signal reaches ffmpeg once per thread; if two land before it handles the
  // first, it aborts without writing the sizes (0xFFFFFFFF). Either way the samples are on disk.
  const decoded = decodeAudio(wavPath).length
  const recordedS = (killedAtMs - recordingAtMs) / 1000 // from ffmpeg's header (the name is reserved earlier)
  assert.ok(
    decoded / 48000 > recordedS - 0.7,
    `${decoded} samples for ${recordedS.toFixed(2)} s (device latency ≈ 0.5 s)`,
  )
  const unfinished = readWav(wavPath).dataSize === 0xffffffff
  const repaired = run(process.execPath, [TOOL, 'repair', 'feed-audio.wav'], { cwd })
  assert.equal(repaired.status, 0, repaired.stderr)
  assert.match(repaired.stderr, unfinished ? /Repaired feed-audio\.wav: RIFF header/ : /already finalized/)
  const after = readWav(wavPath)
  assert.equal(after.riffSize, after.fileBytes - 8)
  assert.equal(after.dataOffset + after.dataSize, after.fileBytes)
  assert.equal(after.samples, decoded, 'the length every reader sees is what ffmpeg decodes')
})
