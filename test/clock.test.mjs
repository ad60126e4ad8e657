// Timing that outlives the recording: the settings stored for mux later, the timesync file
// TracktorLive writes after the video, and the sound card's own clock; real ffmpeg and PulseAudio.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { usePulse, startVideoRecorder, startTool, tempDir, ffprobeStreams, run, TOOL } from './helpers.mjs'

const pulse = usePulse()

test("mux later redoes the recording's timing: its --clock-offset, --video-start and --no-drift-fix are stored and used; a flag given now wins", async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'feed'))
  await sleep(300)
  const videoStartS = video.ulidEpochMs / 1000 + 0.1
  const tool = startTool(
    ['feed', '--format', 'pulse', '--device', pulse.source, '--clock-offset=-0.25', '--no-drift-fix'].concat([
      '--video-start',
      String(videoStartS),
    ]),
    { cwd, env: pulse.env },
  )
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(1500)
  await video.stop()
  tool.ctrlC()
  const recorded = await tool.exited
  assert.equal(recorded.code, 0, recorded.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
  assert.deepEqual(sync.timing, {
    timesyncFile: null,
    videoStartEpochS: videoStartS,
    clockOffsetS: -0.25,
    cameraLatencyS: null, // none given: the kept one's, else unmeasured
    calibration: true,
    driftFix: false,
    events: false,
    allVideos: false,
  })
  const delay = Math.round((sync.audioStartEpochS - (videoStartS - 0.25)) * 48000)
  assert.equal(sync.delaySamples, delay)

  const later = run(process.execPath, [TOOL, 'mux', 'feed-audio-sync.json', '--print'], { cwd, env: pulse.env })
  assert.equal(later.status, 0, later.stderr)
  assert.equal(later.stdout.trim(), recorded.stdout.trim(), 'the same command as at the stop')
  const zero = run(process.execPath, [TOOL, 'mux', 'feed-audio-sync.json', '--print', '--clock-offset=0'], {
    cwd,
    env: pulse.env,
  })
  assert.ok(zero.stdout.includes(`adelay=delays=${delay - 12000}S`), zero.stdout)
})

test('--mux waits for the timesync file that TracktorLive rewrites after the video (a stop hook), and uses the new one', async () => {
  const { parquetWriteFile } = await import('hyparquet-writer')
  const cwd = tempDir()
  const timesyncFile = path.join(cwd, 'ts-timesyncUTC.parquet')
  const write = (data) =>
    parquetWriteFile({ filename: timesyncFile, columnData: [{ name: 'timestampUTC', data, type: 'DOUBLE' }] })
  write([1795000000, 1795000000.033]) // an earlier run's file
  const video = startVideoRecorder(path.join(cwd, 'ts'))
  await sleep(300)
  const tool = startTool(['ts', '--format', 'pulse', '--device', pulse.source, '--mux'], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'ts-audio.wav'))
  await sleep(1500)
  await video.stop()
  tool.ctrlC()
  // The stop hook: a pandas import and a write, well after the video was released.
  await sleep(1500)
  const frames = Number(ffprobeStreams(video.file)[0].nb_frames)
  const firstS = video.ulidEpochMs / 1000 + 0.2
  write(Array.from({ length: frames - 1 }, (_, k) => firstS + k / 30))
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /Waiting up to \d+ s for the timesync file/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'ts-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoStartSource, 'timesync')
  assert.equal(sync.videoStartEpochS, firstS)
  assert.match(result.stderr, /✔ Muxed: /)
})

test('a timesync file that was there before but never comes back: said, and the ULID is used', async () => {
  const { parquetWriteFile } = await import('hyparquet-writer')
  const cwd = tempDir()
  parquetWriteFile({
    filename: path.join(cwd, 'gone-timesyncUTC.parquet'),
    columnData: [{ name: 'timestampUTC', data: [1795000000, 1795000000.033], type: 'DOUBLE' }],
  })
  const video = startVideoRecorder(path.join(cwd, 'gone'))
  await sleep(300)
  const tool = startTool(['gone', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'gone-audio.wav'))
  await sleep(1000)
  await video.stop()
  fs.rmSync(path.join(cwd, 'gone-timesyncUTC.parquet'))
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stderr, /⚠ The timesync file .*gone-timesyncUTC\.parquet was expected but is not there/)
  // The camera's latency unmeasured: the bounds only rise for it (+above/−below).
  assert.match(result.stderr, /audio starts \d+\.\d{3} s \+\d+\/−\d+ ms (after|before) the video \((cut; )?ULID\)/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'gone-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoStartSource, 'ulid')
  assert.ok(
    sync.notes.some((n) => /from the ULID/.test(n.text)),
    JSON.stringify(sync.notes),
  )
})
