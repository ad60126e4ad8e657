// The video's frame clock from TracktorLive's tracking CSV: with a stand-in that reads a camera's
// buffered frames in a burst as TracktorLive does, and with the real TracktorLive 1.0.2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { ulidTimeMs } from '../dist/record-audio.mjs'
import {
  usePulse,
  startTool,
  tempDir,
  run,
  TOOL,
  startTracktorStandIn,
  ROOT,
  tracktorliveEnv,
  startPipeSource,
  seededRandom,
} from './helpers.mjs'

const pulse = usePulse()

test("the tracking CSV's frame clock: frame 0 placed when the camera took it, not when its buffered burst was read", async () => {
  const cwd = tempDir()
  const tracktor = startTracktorStandIn(path.join(cwd, 'fish'), { bufferedS: 0.4 })
  await sleep(600)
  const tool = startTool(['fish', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'fish-audio.wav'))
  await sleep(8000)
  await tracktor.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'fish-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoStartSource, 'tracking-csv', result.stderr)
  assert.equal(sync.trackingCsvFile, tracktor.csvFile)
  const errorMs = (sync.videoStartEpochS - tracktor.firstFrameEpochS) * 1000
  assert.ok(Math.abs(errorMs) < 10, `frame 0 placed ${errorMs.toFixed(1)} ms off (the ULID would be ~330 ms)`)
  const by = sync.trackingCsvEpochSource === 'watched' ? 'its rows stamped as they arrived' : 'its mtime'
  const said = sync.notes.map((n) => n.text).join('\n') // the frame clock's story: --verbose, and the sync file
  assert.ok(said.includes(`on the wall clock by ${by}`), said)
  assert.ok(Math.abs(sync.cameraFps - 30) < 0.05, String(sync.cameraFps))
  assert.ok(sync.bufferedFrames >= 10, `${sync.bufferedFrames} buffered frames`)
  assert.ok(Math.abs(sync.firstReadLateS - 0.4) < 0.01, String(sync.firstReadLateS))

  // Later: the epoch seen while recording is in the sync record, and checked against the CSV's mtime.
  const later = run(process.execPath, [TOOL, 'mux', 'fish-audio-sync.json', '--print', '--json'], { cwd })
  assert.equal(later.status, 0, later.stderr)
  const again = JSON.parse(later.stdout)
  assert.equal(again.trackingCsvEpochSource, sync.trackingCsvEpochSource)
  assert.equal(again.trackingCsvNote, null, 'the mtime agrees with the rows seen')
  assert.ok(Math.abs(again.videoStartEpochS - tracktor.firstFrameEpochS) < 0.01)

  // --camera-latency: taken off the video's times.
  const shifted = run(
    process.execPath,
    [TOOL, 'mux', 'fish-audio-sync.json', '--print', '--json', '--camera-latency=0.135'],
    { cwd },
  )
  assert.ok(Math.abs(JSON.parse(shifted.stdout).videoStartEpochS - (again.videoStartEpochS - 0.135)) < 1e-9)
})

test('the real TracktorLive (1.0.2, a live 30 fps stream, -d -w through its Python API): its CSV gives the frame clock, or is refused when it fell behind the camera', async (t) => {
  const python = '/usr/bin/python3' // Debian's: python3-opencv, python3-sklearn, python3-platformdirs
  const env = tracktorliveEnv({ ...process.env, HOME: tempDir('ra-home-') })
  const probe = run(python, ['-c', 'import cv2, sklearn, platformdirs, tracktorlive'], { env })
  assert.equal(
    probe.status,
    0,
    'TracktorLive 1.0.2 is not found: set TRACKTORLIVE_SRC to its source folder, keep it beside the checkout' +
      ' (../shared/tracktorlive, as CI has it) or pip install it; its Python packages: bash .ci/run installs them' +
      ` (${probe.stderr.trim().split('\n').at(-1)})`,
  )
  const cwd = tempDir()
  const port = 6077 + Math.floor(Math.random() * 500)
  const camera = spawn(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=320x240:rate=30',
      '-t',
      '30',
    ].concat(['-c:v', 'mpeg2video', '-f', 'mpegts', `udp://127.0.0.1:${port}?pkt_size=1316`]),
    { stdio: 'ignore' },
  )
  try {
    await sleep(1000)
    const tool = startTool(['fish', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
    await tool.recording(path.join(cwd, 'fish-audio.wav'))
    const tracker = run(
      python,
      [path.join(ROOT, 'bench', 'tracktorlive_run.py'), `udp://127.0.0.1:${port}`, 'fish', '8'],
      {
        cwd,
        env,
        timeout: 60000,
      },
    )
    assert.equal(tracker.status, 0, tracker.stderr.slice(-2000))
    tool.ctrlC()
    const result = await tool.exited
    assert.equal(result.code, 0, result.stderr)
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'fish-audio-sync.json'), 'utf8'))
    // Under load TracktorLive reads slower than the camera sends and catches up only in bursts: then its
    // rows lag the camera's 30 fps line by an amount that wanders by far more than tracking's jitter.
    const csv = fs.readdirSync(path.join(cwd, 'fish')).find((name) => name.endsWith('.csv'))
    const times = fs
      .readFileSync(path.join(cwd, 'fish', csv), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.split(',')[0]))
    const lagS = times.slice(30).map((time, i) => time - (i + 30) / 30)
    const wanderS = Math.max(...lagS) - Math.min(...lagS)
    if (sync.videoStartSource !== 'tracking-csv') {
      t.diagnostic(`TracktorLive fell behind its camera (its lag wandered ${wanderS.toFixed(2)} s): clock refused`)
      assert.ok(wanderS > 0.25, `refused with TracktorLive keeping pace (lag wandered ${wanderS} s): ${result.stderr}`)
      assert.match(sync.notes.map((n) => n.text).join('\n'), /⚠ Anchors: the tracking CSV shows no steady frame rate/)
      assert.match(result.stderr, /anchors disagree/)
      assert.equal(sync.itsscale, null, 'nothing retimed')
    } else {
      assert.ok(Math.abs(sync.cameraFps - 30) < 0.1, `camera ${sync.cameraFps} fps`)
      assert.ok(sync.firstReadLateS > 0, 'frame 0 was taken before TracktorLive read it')
      assert.ok(sync.videoStartEpochS < ulidTimeMs(path.basename(sync.videoFile)) / 1000 + 0.5)
    }
    const muxed = run('bash', ['-c', sync.muxCommand])
    assert.equal(muxed.status, 0, muxed.stderr)
  } finally {
    camera.kill('SIGTERM')
  }
})

/** Flash times at irregular gaps (0.7–2.1 s) from `fromS` (epoch seconds), `n` of them. */
function flashTimes(fromS, n, seed) {
  const rand = seededRandom(seed)
  const times = [fromS]
  while (times.length < n) times.push(times.at(-1) + 0.7 + rand() * 1.4)
  return times
}

/** One session beside a stand-in whose frames reach it `latencyS` after they are taken; clicks heard with each flash. */
async function latencySession(cwd, pipe, clicksEpochS, args, seed) {
  const flashesEpochS = flashTimes(Date.now() / 1000 + 2, 7, seed)
  clicksEpochS.push(...flashesEpochS) // the microphone hears each flash when it is lit
  const tracktor = startTracktorStandIn(path.join(cwd, 'cam'), { bufferedS: 0.2, latencyS: 0.1, flashesEpochS })
  await sleep(300)
  const tool = startTool(['cam', '--format', 'pulse', '--device', pipe.source, '--out', `s${seed}.wav`, ...args], {
    cwd,
    env: pulse.env,
  })
  await tool.recording(path.join(cwd, `s${seed}.wav`))
  await sleep((flashesEpochS.at(-1) + 1.5 - Date.now() / 1000) * 1000)
  await tracktor.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  return { result, sync: JSON.parse(fs.readFileSync(path.join(cwd, `s${seed}-sync.json`), 'utf8')) }
}

test('camera latency beside the TracktorLive stand-in (frames 100 ms late, a pipe source hearing each flash): --events at the stop measures and keeps it; the next session applies it by itself, its muxed file in sync', async () => {
  const cwd = tempDir()
  const clicksEpochS = []
  const pipe = await startPipeSource(pulse, { clicksEpochS })
  try {
    const first = await latencySession(cwd, pipe, clicksEpochS, ['--events'], 21)
    assert.equal(first.sync.videoStartSource, 'tracking-csv', first.result.stderr)
    assert.equal(first.sync.cameraLatencySource, 'events', first.result.stderr)
    const m = first.sync.cameraLatencyMeasured
    // The frame clock places a frame when it was read: 100 ms after it was taken (and a read's few ms).
    assert.ok(Math.abs(m.medianS - 0.1) < 0.015 && m.pairs >= 5, JSON.stringify(m))
    assert.match(first.result.stderr, /Camera latency measured: \d+\.\d ms .* kept in record-audio-calibration\.json/)
    const kept = JSON.parse(fs.readFileSync(path.join(cwd, 'record-audio-calibration.json'), 'utf8'))
    assert.deepEqual(
      kept.cameras.map((c) => [c.feedId, c.audioDevice, c.videoMode, c.anchor, c.measurements.length]),
      [['cam', pipe.source, '64x48 30 fps mpeg4', 'tracking-csv', 1]],
    )

    const second = await latencySession(cwd, pipe, clicksEpochS, [], 22)
    assert.equal(second.sync.cameraLatencySource, 'calibration', second.result.stderr)
    assert.ok(Math.abs(second.sync.cameraLatencyS - m.medianS) < 0.003, String(second.sync.cameraLatencyS))
    assert.match(second.result.stderr, /Camera latency \d+ ± \d+ ms kept from 1 session/)
    // Physical truth, by content: the muxed file's clicks on its flashes.
    const muxed = run('bash', ['-c', second.sync.muxCommand])
    assert.equal(muxed.status, 0, muxed.stderr)
    const checked = run(process.execPath, [TOOL, 'check', second.sync.muxedFile, '--json'])
    const fit = JSON.parse(checked.stdout)
    assert.ok(fit.consistent && Math.abs(fit.medianS) < 0.015, JSON.stringify({ ...fit, events: undefined }))
    const [low, high] = second.sync.offsetBoundsS
    const trueOffsetS = second.sync.offsetS - fit.medianS // the sound late by medianS: the offset was that much high
    assert.ok(low - 0.002 <= trueOffsetS && trueOffsetS <= high + 0.002, `${trueOffsetS} outside ${low} … ${high}`)
  } finally {
    await pipe.stop()
  }
})
